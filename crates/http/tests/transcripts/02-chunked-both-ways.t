# Chunked request (extension) and chunked response (trailer).
#= POST /upload 1.1 -> 201 req=7 resp=10 []
>>>
POST /upload HTTP/1.1
Host: x
Transfer-Encoding: chunked

3;name=value
abc
4
defg
0

<<<
HTTP/1.1 201 Created
Transfer-Encoding: chunked

a
0123456789
0
X-Checksum: 1

