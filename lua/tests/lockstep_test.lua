-- Tests for lua/examples/lockstep.lua: frame sync through moonrt test.

test("both players get the same frames, with inputs and the script's stamp", function()
  local sim = session{ script = "lua/examples/lockstep.lua" }
  local a = sim:join("a")
  local b = sim:join("b")
  a:frame_input("left")
  sim:advance(500)                 -- 5 frames at 10 per second
  local function frames(p)
    local out = {}
    for _, e in ipairs(p:received()) do
      if e.type == "frame" then out[#out + 1] = e end
    end
    return out
  end
  local fa, fb = frames(a), frames(b)
  expect_eq(#fa, 5)
  expect_eq(fa, fb)
  expect_eq(fa[1].inputs, { { peer = a.peer, payload = "left" } })
  expect_eq(fa[5].inputs, { { peer = 0, payload = "stamp" } })
end)
