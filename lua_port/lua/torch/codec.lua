-- Numbers as the bytes of Torch7's files (torch._codec), for torch/File.lua.
--
-- Binary: little-endian, as Torch7 writes on x86_64: Double 8 bytes (IEEE 754), Float 4,
-- Long 8, Int 4, Short 2, Char / Byte 1 (two's complement for the signed ones). Lua 5.3+
-- has string.pack; LuaJIT has not, and gets the same bytes from arithmetic on the
-- exponent and mantissa (math.frexp / math.ldexp). Integers are exact up to 2^53.
-- Ascii: Torch7's printf formats: %d for the integer types, %.17g for doubles, %.9g for
-- floats, one space between the elements of an array and a newline after it; Char and
-- Byte arrays are their raw bytes followed by a newline.
--
-- encode[kind](values, first, last) -> string, the values values[first..last];
-- decode[kind](s, pos, count) -> (array of count numbers, position after them).

local util = torch._util
local floor, huge = math.floor, math.huge
local char, byte, format = string.char, string.byte, string.format
local concat = table.concat
local unpack = util.unpack
local pack, unpackBytes = string.pack, string.unpack

local codec = { binary = { encode = {}, decode = {} }, ascii = { encode = {}, decode = {} } }
torch._codec = codec

local CHUNK = 4000  -- values per string.char / string.byte call (LuaJIT's result limit)

-- The quiet NaN with the sign bit clear (what the arithmetic path below writes for NaN).
local NAN = unpackBytes and unpackBytes("<d", "\0\0\0\0\0\0\248\127") or 0 / 0

-- ----------------------------------------------------------------------------- binary

local PACK = { Double = "d", Float = "f", Long = "i8", Int = "i4", Short = "i2", Char = "i1", Byte = "I1" }
local SIZE = util.ELEMENT_SIZE

-- Two's complement bytes of the integer v (exact when |v| < 2^53), appended to out.
local function integerBytes(out, v, size)
  if v ~= v or v == huge or v == -huge then
    v = 0
  end
  v = v >= 0 and floor(v) or -floor(-v)
  if size == 8 then
    local low = v % 4294967296
    local high = ((v - low) / 4294967296) % 4294967296
    integerBytes(out, low, 4)
    integerBytes(out, high, 4)
    return
  end
  v = v % (2 ^ (8 * size))
  for _ = 1, size do
    local b = v % 256
    out[#out + 1] = b
    v = (v - b) / 256
  end
end

local frexp = math.frexp

-- IEEE 754 bytes of x with `mantissaBits` and `exponentBits` (double 52/11, float 23/8).
local function floatBytes(out, x, mantissaBits, exponentBits, size)
  local bias = 2 ^ (exponentBits - 1) - 1
  local maxExponent = 2 ^ exponentBits - 1
  local sign = (x < 0 or (x == 0 and 1 / x < 0)) and 1 or 0
  if sign == 1 then
    x = -x
  end
  local exponent, mantissa
  if x ~= x then
    exponent, mantissa = maxExponent, 2 ^ (mantissaBits - 1)
  elseif x == huge then
    exponent, mantissa = maxExponent, 0
  elseif x == 0 then
    exponent, mantissa = 0, 0
  else
    local m, e = frexp(x)  -- x = m * 2^e, 0.5 <= m < 1
    exponent = e + bias - 1
    if exponent >= maxExponent then
      exponent, mantissa = maxExponent, 0
    elseif exponent <= 0 then
      mantissa = floor(x * 2 ^ (bias - 1) * 2 ^ mantissaBits + 0.5)  -- 2^1074 alone overflows
      exponent = 0
    else
      mantissa = (m * 2 - 1) * 2 ^ mantissaBits
    end
  end
  -- The bits: sign, exponent, mantissa, as two 32-bit halves for a double.
  if size == 8 then
    local low = mantissa % 4294967296
    local high = (mantissa - low) / 4294967296 + exponent * 1048576 + sign * 2147483648
    integerBytes(out, low, 4)
    integerBytes(out, high, 4)
  else
    integerBytes(out, mantissa + exponent * 8388608 + sign * 2147483648, 4)
  end
end

local function fromBytes(bytes, at, size, signed)
  if size == 8 then  -- two halves: a 64-bit sum would round before the sign is taken off
    return fromBytes(bytes, at + 4, 4, signed) * 4294967296 + fromBytes(bytes, at, 4, false)
  end
  local v, scale = 0, 1
  for k = 0, size - 1 do
    v = v + bytes[at + k] * scale
    scale = scale * 256
  end
  if signed and v >= scale / 2 then
    v = v - scale
  end
  return v
end

local function fromFloatBytes(bytes, at, mantissaBits, exponentBits, size)
  local bias = 2 ^ (exponentBits - 1) - 1
  local maxExponent = 2 ^ exponentBits - 1
  local low, high
  if size == 8 then
    low, high = fromBytes(bytes, at, 4, false), fromBytes(bytes, at + 4, 4, false)
  else
    low, high = 0, fromBytes(bytes, at, 4, false)
  end
  local sign = high >= 2147483648 and -1 or 1
  high = high % 2147483648
  local highMantissaBits = mantissaBits - (size == 8 and 32 or 0)
  local exponent = floor(high / 2 ^ highMantissaBits)
  local mantissa = (high % 2 ^ highMantissaBits) * (size == 8 and 4294967296 or 1) + low
  if exponent == maxExponent then
    if mantissa == 0 then
      return sign * huge
    end
    return 0 / 0
  elseif exponent == 0 then
    return sign * mantissa * 2 ^ (1 - bias) * 2 ^ -mantissaBits
  end
  return sign * (1 + mantissa / 2 ^ mantissaBits) * 2 ^ (exponent - bias)
end

local BITS = { Double = { 52, 11 }, Float = { 23, 8 } }
local SIGNED = { Long = true, Int = true, Short = true, Char = true, Byte = false }

local function bytesToString(out)
  local parts = {}
  for first = 1, #out, CHUNK do
    parts[#parts + 1] = char(unpack(out, first, math.min(#out, first + CHUNK - 1)))
  end
  return concat(parts)
end

for kind, size in pairs(SIZE) do
  local bits = BITS[kind]
  if pack then
    local many = "<" .. string.rep(PACK[kind], CHUNK)
    codec.binary.encode[kind] = function(values, first, last)
      local parts = {}
      local k = first
      while k <= last do
        local stop = math.min(last, k + CHUNK - 1)
        local fmt = stop - k + 1 == CHUNK and many or "<" .. string.rep(PACK[kind], stop - k + 1)
        if not bits then
          local chunk = {}
          for i = k, stop do
            local v = values[i]
            if v ~= v or v == huge or v == -huge then v = 0 end
            v = v >= 0 and floor(v) or -floor(-v)
            if kind ~= "Long" then
              local span = 2 ^ (8 * size)
              v = v % span
              if SIGNED[kind] and v >= span / 2 then v = v - span end
            end
            chunk[#chunk + 1] = math.tointeger(v) or v
          end
          parts[#parts + 1] = pack(fmt, unpack(chunk))
        else
          local chunk = { unpack(values, k, stop) }
          for i = 1, #chunk do
            if chunk[i] ~= chunk[i] then
              chunk[i] = NAN  -- one NaN, the same bytes as LuaJIT writes (0/0 is -nan on x86)
            end
          end
          parts[#parts + 1] = pack(fmt, unpack(chunk))
        end
        k = stop + 1
      end
      return concat(parts)
    end
    codec.binary.decode[kind] = function(s, pos, count)
      local values = {}
      local k = 0
      while k < count do
        local n = math.min(CHUNK, count - k)
        local chunk = { unpackBytes(n == CHUNK and many or "<" .. string.rep(PACK[kind], n), s, pos) }
        for i = 1, n do
          values[k + i] = chunk[i]
        end
        pos = chunk[n + 1]
        k = k + n
      end
      return values, pos
    end
  else
    local round = kind == "Float" and util.toFloat or function(v) return v end
    codec.binary.encode[kind] = function(values, first, last)
      local out = {}
      for i = first, last do
        if bits then
          floatBytes(out, round(values[i]), bits[1], bits[2], size)
        else
          integerBytes(out, values[i], size)
        end
      end
      return bytesToString(out)
    end
    local perChunk = floor(CHUNK / size)
    codec.binary.decode[kind] = function(s, pos, count)
      local values = {}
      for k = 0, count - 1, perChunk do
        local n = math.min(perChunk, count - k)
        local bytes = { byte(s, pos, pos + n * size - 1) }
        for i = 0, n - 1 do
          local at = i * size + 1
          if bits then
            values[k + i + 1] = fromFloatBytes(bytes, at, bits[1], bits[2], size)
          else
            values[k + i + 1] = fromBytes(bytes, at, size, SIGNED[kind])
          end
        end
        pos = pos + n * size
      end
      return values, pos
    end
  end
end

-- ----------------------------------------------------------------------------- ascii

local ASCII_FORMAT = { Double = "%.17g", Float = "%.9g" }

local function asciiNumber(kind, v)
  if v ~= v then
    return "nan"
  elseif v == huge then
    return "inf"
  elseif v == -huge then
    return "-inf"
  end
  local fmt = ASCII_FORMAT[kind]
  if fmt then
    return format(fmt, v)
  end
  v = v >= 0 and floor(v) or -floor(-v)
  return format("%d", v)
end

for kind in pairs(SIZE) do
  if kind == "Char" or kind == "Byte" then
    codec.ascii.encode[kind] = function(values, first, last)
      local out = {}
      for i = first, last do
        out[#out + 1] = values[i] % 256
      end
      return bytesToString(out) .. (last >= first and "\n" or "")
    end
    codec.ascii.decode[kind] = function(s, pos, count)
      local values = {}
      for k = 0, count - 1, CHUNK do
        local n = math.min(CHUNK, count - k)
        local bytes = { byte(s, pos, pos + n - 1) }
        for i = 1, n do
          local b = bytes[i]
          values[k + i] = (kind == "Char" and b >= 128) and b - 256 or b
        end
        pos = pos + n
      end
      if count > 0 and byte(s, pos) == 10 then
        pos = pos + 1
      end
      return values, pos
    end
  else
    codec.ascii.encode[kind] = function(values, first, last)
      local out = {}
      for i = first, last do
        out[#out + 1] = asciiNumber(kind, values[i])
      end
      return concat(out, " ") .. (last >= first and "\n" or "")
    end
    codec.ascii.decode[kind] = function(s, pos, count)
      local values = {}
      for k = 1, count do
        local first, last, token = string.find(s, "^%s*(%S+)", pos)
        if not first then
          return nil, pos
        end
        local lower = string.lower(token)
        local v
        if lower == "nan" or lower == "-nan" then
          v = 0 / 0
        elseif lower == "inf" or lower == "+inf" then
          v = huge
        elseif lower == "-inf" then
          v = -huge
        else
          v = tonumber(token)
          if v == nil then
            return nil, pos
          end
          if ASCII_FORMAT[kind] then
            v = v * 1.0  -- a float on Lua 5.4 too (integer types keep integers)
            if v == 0 and string.sub(token, 1, 1) == "-" then
              v = -0.0  -- Lua 5.4 reads "-0" as the integer 0
            end
          end
        end
        values[k] = v
        pos = last + 1
      end
      if count > 0 and byte(s, pos) == 10 then
        pos = pos + 1
      end
      return values, pos
    end
  end
end

return codec
