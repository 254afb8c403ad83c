# 101 Switching Protocols: recorded, then the websocket frames are left alone.
#= GET /ws 1.1 -> 101 req=0 resp=0 []
>>>
GET /ws HTTP/1.1
Host: x
Upgrade: websocket
Connection: Upgrade

\x81\x85abcdeHELLO\
<<<
HTTP/1.1 101 Switching Protocols
Upgrade: websocket
Connection: Upgrade

\x81\x05hello\
