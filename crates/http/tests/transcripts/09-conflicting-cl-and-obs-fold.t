# Two different Content-Lengths (the larger frames the body) and a folded header.
#= POST /x 1.1 -> 200 req=6 resp=0 [conflicting_content_length,obs_fold]
>>>
POST /x HTTP/1.1
Host: t
X-Folded: first
 second
Content-Length: 3
Content-Length: 6

abcdef\
<<<
HTTP/1.1 200 OK
Content-Length: 0

