# Unescaped spaces in the target (seen in real clients) are kept; the version is the last word.
#= GET /a b/c d.pdf 1.1 -> 404 req=0 resp=0 []
>>>
GET /a b/c d.pdf HTTP/1.1
Host: t

<<<
HTTP/1.1 404 Not Found
Content-Length: 0

