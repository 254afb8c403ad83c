//! Feeds arbitrary bytes (plain or gzip, pcap or pcapng) to the capture reader: it must
//! never panic, never loop forever, and keep its invariants.
#![no_main]

use std::io::Cursor;

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let Ok(mut reader) =
        capture::FileReader::from_reader(Box::new(Cursor::new(data.to_vec())), "fuzz")
    else {
        return;
    };
    let mut packets = 0u64;
    let mut bytes = 0u64;
    while let Ok(Some(p)) = reader.next_packet() {
        assert!(p.orig_len as usize >= p.data.len());
        packets += 1;
        bytes += p.data.len() as u64;
    }
    let stats = reader.stats();
    assert_eq!(stats.packets, packets);
    assert_eq!(stats.bytes, bytes);
    assert!(stats.truncated_records <= 1);
    // A cursor never fails: the end is reached, and stays reached.
    assert!(matches!(reader.next_packet(), Ok(None)));
});
