-- GET /list/?page_size=1000 with Bearer: one page holding every user of a
-- 1,000-user table (the Django peer returned them all from GET /list/).
local C = dofile((os.getenv("BENCH_DIR") or ".") .. "/scenarios/common.lua")
local reqs, i = {}, 0
function init_scenario(tid)
  for _, u in ipairs(C.load_seed()) do
    table.insert(reqs, wrk.format("GET", "/list/?page_size=1000", {["Authorization"] = "Bearer " .. u.access}))
  end
  i = (tid - 1) * 7
end
function next_request()
  i = i + 1
  return reqs[(i % #reqs) + 1]
end
