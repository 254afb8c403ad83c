# Three pipelined requests in one flight; responses back to back (one with an empty body).
#= GET /a 1.1 -> 200 req=0 resp=3 []
#= GET /b 1.1 -> 404 req=0 resp=0 []
#= HEAD /c 1.1 -> 200 req=0 resp=0 []
>>>
GET /a HTTP/1.1
Host: api.example.com

GET /b HTTP/1.1
Host: api.example.com

HEAD /c HTTP/1.1
Host: api.example.com

<<<
HTTP/1.1 200 OK
Content-Length: 3

abcHTTP/1.1 404 Not Found
Content-Length: 0

HTTP/1.1 200 OK
Content-Length: 1000

\
