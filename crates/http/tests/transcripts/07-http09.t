# A simple request and its raw response (no status line), which ends at close.
#= GET /index.html 0.9 -> 0 req=0 resp=13 []
>>>
GET /index.html
<<<
<html></html>\
