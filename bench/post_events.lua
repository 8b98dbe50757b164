-- wrk script: POST distinct purchase events, one per request or in batches.
--
--   wrk -t2 -c32 -d10s -s bench/post_events.lua http://127.0.0.1:PORT/v1/events \
--       -- RUN_ID MODE BATCH MEMBERS API_KEY
--
-- MODE is "single" (one event per request, POST /v1/events) or "batch" ({"events": [...]}
-- of BATCH events, POST /v1/events/batch). Every event_id is RUN_ID-THREAD-COUNTER: each
-- wrk thread has its own Lua state and its own counter, so ids never collide, and a new
-- RUN_ID per run keeps them distinct across runs against the same database. Members are
-- drawn uniformly from MEMBERS customer ids.
--
-- The environment variable BENCH_DELAY_MS > 0 makes each connection wait about that long
-- (uniform 0.5x-1.5x) before its next request: the way this harness holds the offered rate
-- below the maximum, since Debian has no wrk2. wrk decides once, when it loads the script,
-- whether delay() exists, so it is only defined when pacing is asked for.
--
-- done() prints one line "BENCH_JSON {...}" with the totals, latency percentiles and the
-- count of each HTTP status; for batches also the per-item outcomes found in the bodies.

local threads = {}

function setup(thread)
   thread:set("tid", #threads + 1)
   table.insert(threads, thread)
end

local categories = {
   "coffee", "tea", "bakery", "grocery", "dairy", "produce", "electronics", "apparel",
   "beauty", "books", "toys", "home", "sports", "pet", "baby", "wine",
}
local channels = { "app", "store", "store", "store", "web", "app", "store", "app", "web", "store" }

local pace_ms = tonumber(os.getenv("BENCH_DELAY_MS") or "0") or 0
local run_id, mode, batch, members, headers, path
local counter = 0

function init(args)
   run_id = args[1] or tostring(os.time())
   mode = args[2] or "single"
   batch = tonumber(args[3] or "1")
   members = tonumber(args[4] or "10000")
   headers = {
      ["Content-Type"] = "application/json",
      ["Authorization"] = "Bearer " .. (args[5] or ""),
   }
   path = wrk.path
   math.randomseed(tid * 104729 + os.time())
   statuses = {}
   items_applied, items_duplicate, items_rejected = 0, 0, 0
end

local function money(cents)
   return string.format("%d.%02d", math.floor(cents / 100), cents % 100)
end

local function purchase()
   counter = counter + 1
   local id = string.format("%s-%d-%d", run_id, tid, counter)
   local lines, total = {}, 0
   for i = 1, math.random(1, 4) do
      local category = categories[math.random(#categories)]
      local quantity = math.random(1, 3)
      local price = math.random(100, 20000)
      total = total + quantity * price
      lines[i] = string.format(
         '{"sku":"%s-%02d","category":"%s","quantity":%d,"price":"%s"}',
         category, math.random(1, 10), category, quantity, money(price))
   end
   local occurred = string.format("2026-12-%02dT%02d:%02d:%02d+08:00",
      math.random(1, 28), math.random(7, 22), math.random(0, 59), math.random(0, 59))
   return string.format(
      '{"event_id":"%s","type":"purchase","customer_id":"m%05d","occurred_at":"%s",' ..
      '"order_id":"o-%s","amount":"%s","channel":"%s","store_id":"s%03d","items":[%s]}',
      id, math.random(1, members), occurred, id, money(total),
      channels[math.random(#channels)], math.random(1, 120), table.concat(lines, ","))
end

function request()
   local body
   if mode == "batch" then
      local events = {}
      for i = 1, batch do
         events[i] = purchase()
      end
      body = '{"events":[' .. table.concat(events, ",") .. "]}"
   else
      body = purchase()
   end
   return wrk.format("POST", path, headers, body)
end

if pace_ms > 0 then
   function delay()
      return math.floor(pace_ms * (0.5 + math.random()))
   end
end

local function count(body, pattern)
   local _, n = string.gsub(body, pattern, "")
   return n
end

function response(status, _, body)
   statuses[status] = (statuses[status] or 0) + 1
   if mode == "batch" and body then
      items_applied = items_applied + count(body, '"status":%s*"applied"')
      items_duplicate = items_duplicate + count(body, '"status":%s*"duplicate"')
      items_rejected = items_rejected + count(body, '"status":%s*"rejected"')
   end
end

function done(summary, latency, _)
   local status_totals = {}
   local applied, duplicate, rejected = 0, 0, 0
   for _, thread in ipairs(threads) do
      local counts = thread:get("statuses")
      for code, n in pairs(counts) do
         status_totals[code] = (status_totals[code] or 0) + n
      end
      applied = applied + thread:get("items_applied")
      duplicate = duplicate + thread:get("items_duplicate")
      rejected = rejected + thread:get("items_rejected")
   end
   local codes = {}
   for code, n in pairs(status_totals) do
      table.insert(codes, string.format('"%d":%d', code, n))
   end
   local percentiles = {}
   for _, p in ipairs({ 50, 75, 90, 99, 99.9 }) do
      table.insert(percentiles, string.format('"%s":%d', tostring(p), latency:percentile(p)))
   end
   local e = summary.errors
   io.write(string.format(
      'BENCH_JSON {"requests":%d,"duration_us":%d,"bytes":%d,' ..
      '"errors":{"connect":%d,"read":%d,"write":%d,"status":%d,"timeout":%d},' ..
      '"latency_us":{"min":%d,"mean":%.1f,"max":%d,"stdev":%.1f,"percentiles":{%s}},' ..
      '"statuses":{%s},"items":{"applied":%d,"duplicate":%d,"rejected":%d}}\n',
      summary.requests, summary.duration, summary.bytes,
      e.connect, e.read, e.write, e.status, e.timeout,
      latency.min, latency.mean, latency.max, latency.stdev, table.concat(percentiles, ","),
      table.concat(codes, ","), applied, duplicate, rejected))
end
