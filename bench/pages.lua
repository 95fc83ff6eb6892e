-- wrk script: GET the status page and its summary in turn.
local paths = { "/status", "/api/v2/summary.json" }
local i = 0
request = function()
  i = i % #paths + 1
  return wrk.format("GET", paths[i])
end
