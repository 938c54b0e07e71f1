-- The ceiling: GET /healthz, the cheapest route of the same binary (no
-- database, no token).
local C = dofile((os.getenv("BENCH_DIR") or ".") .. "/scenarios/common.lua")
local req
function init_scenario(tid) req = wrk.format("GET", "/healthz") end
function next_request() return req end
