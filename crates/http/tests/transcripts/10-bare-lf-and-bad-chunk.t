# Bare LF line ends, then a chunk size that is not hex: the body ends there, flagged.
#= GET /lf 1.1 -> 200 req=0 resp=2 [bare_lf]
#= GET /chunk 1.1 -> 200 req=0 resp=0 [bad_chunk]
>>>
GET /lf HTTP/1.1\n\
Host: t\n\
\n\
GET /chunk HTTP/1.1
Host: t

<<<
HTTP/1.1 200 OK\n\
Content-Length: 2\n\
\n\
okHTTP/1.1 200 OK
Transfer-Encoding: chunked

zz
