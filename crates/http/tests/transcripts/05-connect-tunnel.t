# CONNECT 200 starts a tunnel: the TLS bytes after it are not parsed as HTTP.
#= CONNECT api.example.com:443 1.1 -> 200 req=0 resp=0 []
>>>
CONNECT api.example.com:443 HTTP/1.1
Host: api.example.com:443

\x16\x03\x01\x00\x05hello\
<<<
HTTP/1.1 200 Connection established

\x16\x03\x03\x00\x02hi\
