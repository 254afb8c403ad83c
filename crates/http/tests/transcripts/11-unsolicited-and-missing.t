# A response nobody asked for, and a request never answered.
#= - - - -> 200 req=0 resp=2 [unsolicited_response]
#= GET /lost 1.1 -> - req=0 resp=0 [missing_response]
<<<
HTTP/1.1 200 OK
Content-Length: 2

hi\
>>>
GET /lost HTTP/1.1
Host: t

