-- wrk client for scripts/soak: 500 sessions, and on every request a forged identity in
-- three spellings, which must never reach the business service.
local n = 0
local sessions = tonumber(os.getenv("SOAK_SESSIONS") or "500")
local close = os.getenv("SOAK_CLOSE") == "1"

request = function()
  n = n + 1
  local headers = {
    ["Cookie"] = "session=soak-" .. (n % sessions),
    ["X-User"] = "forged-by-client",
    ["X-User-Id"] = "forged",
    ["x_user_id"] = "forged",
  }
  if close then
    headers["Connection"] = "close"
  end
  return wrk.format("GET", "/api/soak", headers)
end
