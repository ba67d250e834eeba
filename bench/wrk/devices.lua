-- wrk script: every request is one device's, with that device's own token.
--   WRK_TOKENS  file of "device-id token" lines
--   WRK_MODE    poll (GET next), status (PUT status, alternating downloading/installing)
--               or finish (PUT status success: each device once; more requests than devices
--               are answered 409, which fails the run)
--   WRK_DEPLOYMENT  the deployment id, for status
--   WRK_OFFSET  where in its share of the devices each thread starts (default 0)
-- Each wrk thread takes its own share of the devices, so no two requests of one device are
-- in flight at once as long as there are more devices per thread than connections.
local ids, tokens = {}, {}
local sent = 0
local threads = 0

function setup(thread)
  thread:set("share", threads)
  threads = threads + 1
  thread:set("threads", 0)
end

function init(args)
  for line in io.lines(os.getenv("WRK_TOKENS")) do
    local id, token = line:match("^(%S+) (%S+)$")
    ids[#ids + 1] = id
    tokens[#tokens + 1] = token
  end
  mode = os.getenv("WRK_MODE")
  deployment = os.getenv("WRK_DEPLOYMENT")
  shares = tonumber(os.getenv("WRK_THREADS"))
  per_share = math.floor(#ids / shares)
  offset = tonumber(os.getenv("WRK_OFFSET") or "0")
end

function request()
  local round = math.floor(sent / per_share)
  local i = share * per_share + ((sent + offset) % per_share) + 1
  sent = sent + 1
  local headers = { ["Authorization"] = "Bearer " .. tokens[i] }
  if mode == "status" or mode == "finish" then
    headers["Content-Type"] = "application/json"
    local status = (round % 2 == 0) and "downloading" or "installing"
    if mode == "finish" then
      status = "success"
    end
    return wrk.format("PUT",
      "/api/devices/v1/deployments/device/deployments/" .. deployment .. "/status",
      headers, '{"status":"' .. status .. '"}')
  end
  return wrk.format("GET",
    "/api/devices/v1/deployments/device/deployments/next?artifact_name=factory&device_type=bench",
    headers)
end
