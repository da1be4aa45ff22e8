-- wrk client for scripts/soak: SOAK_SESSIONS (500) sessions named SOAK_PREFIX<n>, and on every request a forged identity in
-- three spellings, which must never reach the business service.
local n = 0
local sessions = tonumber(os.getenv("SOAK_SESSIONS") or "500")
local close = os.getenv("SOAK_CLOSE") == "1"
local prefix = os.getenv("SOAK_PREFIX") or "soak-"

request = function()
  n = n + 1
  local headers = {
    ["Cookie"] = "session=" .. prefix .. (n % sessions),
    ["X-User"] = "forged-by-client",
    ["X-User-Id"] = "forged",
    ["x_user_id"] = "forged",
  }
  if close then
    headers["Connection"] = "close"
  end
  return wrk.format("GET", "/api/soak", headers)
end
