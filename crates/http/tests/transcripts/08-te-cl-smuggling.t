# Transfer-Encoding and Content-Length together: chunked wins, the smuggled request is seen.
#= POST / 1.1 -> 200 req=0 resp=0 [te_cl_conflict]
#= GET /admin 1.1 -> 403 req=0 resp=0 []
>>>
POST / HTTP/1.1
Host: t
Content-Length: 40
Transfer-Encoding: chunked

0

GET /admin HTTP/1.1
Host: t

<<<
HTTP/1.1 200 OK
Content-Length: 0

HTTP/1.1 403 Forbidden
Content-Length: 0

