# HTTP/1.0 response without a length: the body ends with the connection.
#= GET / 1.0 -> 200 req=0 resp=12 []
>>>
GET / HTTP/1.0

<<<
HTTP/1.0 200 OK
Content-Type: text/plain

until close!\
