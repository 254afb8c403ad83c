# The interim 100 is not the answer; the 200 after the body is.
#= PUT /big 1.1 -> 200 req=5 resp=2 []
>>>
PUT /big HTTP/1.1
Host: x
Expect: 100-continue
Content-Length: 5

<<<
HTTP/1.1 100 Continue

>>>
hello\
<<<
HTTP/1.1 200 OK
Content-Length: 2

ok\
