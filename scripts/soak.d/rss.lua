-- wrk client for the RSS check: one cached session, stops each thread after its share
-- of SOAK_RSS_REQUESTS requests.
local limit = math.floor(tonumber(os.getenv("SOAK_RSS_REQUESTS") or "1000000") / tonumber(os.getenv("SOAK_RSS_THREADS") or "1"))
local done = 0

request = function()
  return wrk.format("GET", "/api/soak", { ["Cookie"] = "session=rss-probe" })
end

response = function(status, headers, body)
  done = done + 1
  if done >= limit then
    wrk.thread:stop()
  end
end
