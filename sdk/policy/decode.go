package policy

import (
	"encoding/binary"
	"encoding/json"
	"math/bits"
	"slices"
	"strconv"
	"strings"
	"time"
	"unicode/utf16"
	"unicode/utf8"
	"unsafe"
)

// A hand-written decoder for the SDK's fixed request types.
//
// Why: a Go guest runs under wazero with close-on-context-done, where every
// jump between basic blocks of Go's wasm code costs a trip to the host, so
// encoding/json's reflection and per-byte scanner cost ~900 us per realistic
// request. This decoder does one pass with few calls and jumps per byte
// (strings are scanned 8 bytes at a time, keys are predicted and compared a
// word at a time), cuts its strings out of the request buffer without
// copying, and allocates only for pointers, slices and maps.
//
// It is a fast path, not a second definition of the format: whatever it does
// not handle exactly as encoding/json would (a syntax error, a type mismatch,
// a repeated key, a key matching a field only case-insensitively, a
// non-ASCII key, a number that is not a plain integer, excessive nesting) makes
// it give up, and the caller decodes the request with encoding/json instead,
// which then yields its usual result or error. Tests compare the two on tricky
// and fuzzed inputs.

// slowPath is panicked by the decoder to give up; decodeFast recovers it.
type slowPath struct{}

// decodeFast decodes a request into v (a *ValidateRequest or a
// *ReconcileRequest) and reports whether it could; on false, v is garbage
// and the caller must decode with encoding/json.
//
// It takes ownership of data: the strings it returns share its memory
// (copying the request costs more than decoding it, in a guest), so data
// must not be modified afterwards.
func decodeFast(data []byte, v any) (ok bool) {
	d := decoder{b: data, s: unsafe.String(unsafe.SliceData(data), len(data))}
	defer func() {
		if !ok {
			if p := recover(); p != nil {
				if _, slow := p.(slowPath); !slow {
					panic(p)
				}
			}
		}
	}()
	d.ws()
	if d.literal("null") {
		// null into a struct leaves it alone.
	} else {
		switch v := v.(type) {
		case *ValidateRequest:
			d.validateRequest(v)
		case *ReconcileRequest:
			d.reconcileRequest(v)
		default:
			return false
		}
	}
	d.ws()
	if d.i != len(d.b) {
		d.fail()
	}
	return true
}

// unmarshalRequest decodes a request the fast way if it can, and with
// encoding/json otherwise. Like decodeFast, it takes ownership of data.
func unmarshalRequest(data []byte, v any) error {
	if decodeFast(data, v) {
		return nil
	}
	switch v := v.(type) {
	case *ValidateRequest:
		*v = ValidateRequest{}
	case *ReconcileRequest:
		*v = ReconcileRequest{}
	}
	return json.Unmarshal(data, v)
}

type decoder struct {
	b     []byte // the request
	s     string // the same bytes as a string; strings are cut from it
	i     int    // the next byte to read
	depth int    // nesting of skipped values
}

func (d *decoder) fail() { panic(slowPath{}) }

// ws skips whitespace. The check for none, the common case, is inlined.
func (d *decoder) ws() {
	if d.i < len(d.b) && d.b[d.i] > ' ' {
		return
	}
	d.wsSlow()
}

func (d *decoder) wsSlow() {
	for d.i < len(d.b) {
		switch d.b[d.i] {
		case ' ', '\t', '\n', '\r':
			d.i++
		default:
			return
		}
	}
}

// peek returns the next byte, or fails at the end of input.
func (d *decoder) peek() byte {
	if d.i >= len(d.b) {
		d.fail()
	}
	return d.b[d.i]
}

// literal consumes lit (true, false or null) if it comes next.
func (d *decoder) literal(lit string) bool {
	if len(d.b)-d.i >= len(lit) && d.s[d.i:d.i+len(lit)] == lit {
		d.i += len(lit)
		return true
	}
	return false
}

// null consumes a null if it comes next. In encoding/json a null leaves
// any field alone (pointers, slices and maps stay nil), so a null field is
// simply skipped.
func (d *decoder) null() bool {
	return d.peek() == 'n' && d.literal("null")
}

// key returns the next key of the object being read, having consumed it and
// its colon, or ok == false having consumed the closing '}'. Keys of struct
// fields must be plain ASCII without escapes (anything else might match a
// field under encoding/json's case folding).
func (d *decoder) key(first bool) (key string, ok bool) {
	d.ws()
	c := d.peek()
	if c == '}' {
		d.i++
		return "", false
	}
	if !first {
		if c != ',' {
			d.fail()
		}
		d.i++
		d.ws()
		c = d.peek()
	}
	if c != '"' {
		d.fail()
	}
	start := d.i + 1
	i := scan(d.b, start)
	if i >= len(d.b) || d.b[i] != '"' {
		d.fail()
	}
	d.i = i + 1
	d.colon()
	return d.s[start:i], true
}

// colon consumes the ':' after a key and the whitespace around it.
func (d *decoder) colon() {
	d.ws()
	if d.peek() != ':' {
		d.fail()
	}
	d.i++
	d.ws()
}

// unknown skips the value of a key no field has. A key that matches a field
// case-insensitively would be decoded into it by encoding/json: give up.
func (d *decoder) unknown(key string, fields []string) {
	for _, f := range fields {
		if strings.EqualFold(key, f) {
			d.fail()
		}
	}
	d.skip()
}

const (
	lsb = 0x0101010101010101
	msb = 0x8080808080808080
)

// special returns, for the 8 bytes at b[i:] (which must exist), a mask
// whose lowest set bit is the top bit of the first byte that is '"', '\\',
// a control character or non-ASCII, or 0 if there is none. The classic
// has-zero and has-less tricks may also flag lanes above a real hit, never
// below one, so the lowest flag is exact.
func special(b []byte, i int) uint64 {
	w := binary.LittleEndian.Uint64(b[i:])
	t := (w - lsb*0x20) | ((w ^ lsb*'"') - lsb) | ((w ^ lsb*'\\') - lsb)
	return (t&^w | w) & msb
}

// scan returns the index of the first special byte (see special) at or
// after i, or len(b).
func scan(b []byte, i int) int {
	for i+8 <= len(b) {
		if m := special(b, i); m != 0 {
			return i + bits.TrailingZeros64(m)/8
		}
		i += 8
	}
	for ; i < len(b); i++ {
		if c := b[i]; c == '"' || c == '\\' || c < 0x20 || c >= 0x80 {
			break
		}
	}
	return i
}

// str reads a string (the next byte must be '"').
func (d *decoder) str() string {
	if d.peek() != '"' {
		d.fail()
	}
	start := d.i + 1
	i := scan(d.b, start)
	if i < len(d.b) && d.b[i] == '"' {
		d.i = i + 1
		return d.s[start:i]
	}
	return d.strSlow(start, i)
}

// strSlow reads the rest of a string that has escapes or non-ASCII bytes,
// from i on; b[start:i] is plain. It decodes as encoding/json does: invalid
// UTF-8 and unpaired surrogates become U+FFFD.
func (d *decoder) strSlow(start, i int) string {
	out := make([]byte, 0, i-start+16)
	out = append(out, d.b[start:i]...)
	for i < len(d.b) {
		c := d.b[i]
		switch {
		case c == '"':
			d.i = i + 1
			return string(out)
		case c < 0x20:
			d.fail()
		case c < 0x80 && c != '\\':
			out = append(out, c)
			i++
		case c >= 0x80:
			r, n := utf8.DecodeRune(d.b[i:])
			if r == utf8.RuneError && n == 1 {
				out = utf8.AppendRune(out, utf8.RuneError)
			} else {
				out = append(out, d.b[i:i+n]...)
			}
			i += n
		default: // backslash
			if i+1 >= len(d.b) {
				d.fail()
			}
			e := d.b[i+1]
			i += 2
			switch e {
			case '"', '\\', '/':
				out = append(out, e)
			case 'b':
				out = append(out, '\b')
			case 'f':
				out = append(out, '\f')
			case 'n':
				out = append(out, '\n')
			case 'r':
				out = append(out, '\r')
			case 't':
				out = append(out, '\t')
			case 'u':
				r := d.hex4(i)
				i += 4
				if utf16.IsSurrogate(r) {
					// A valid pair is one rune; anything else makes
					// this half U+FFFD and leaves what follows alone.
					if i+6 <= len(d.b) && d.b[i] == '\\' && d.b[i+1] == 'u' {
						if r2 := d.hex4(i + 2); utf16.DecodeRune(r, r2) != utf8.RuneError {
							r = utf16.DecodeRune(r, r2)
							i += 6
						} else {
							r = utf8.RuneError
						}
					} else {
						r = utf8.RuneError
					}
				}
				out = utf8.AppendRune(out, r)
			default:
				d.fail()
			}
		}
	}
	d.fail()
	return ""
}

// hex4 decodes the four hex digits at b[i:].
func (d *decoder) hex4(i int) rune {
	if i+4 > len(d.b) {
		d.fail()
	}
	var r rune
	for _, c := range d.b[i : i+4] {
		switch {
		case '0' <= c && c <= '9':
			c -= '0'
		case 'a' <= c && c <= 'f':
			c -= 'a' - 10
		case 'A' <= c && c <= 'F':
			c -= 'A' - 10
		default:
			d.fail()
		}
		r = r<<4 | rune(c)
	}
	return r
}

// string fields: null leaves them alone, anything but a string fails.
func (d *decoder) setString(p *string) {
	if !d.null() {
		*p = d.str()
	}
}

func (d *decoder) setStatus(p *Status) {
	if !d.null() {
		*p = Status(d.str())
	}
}

func (d *decoder) setAction(p *Action) {
	if !d.null() {
		*p = Action(d.str())
	}
}

// integer reads a JSON number that is a plain integer fitting in bits; a
// fraction or exponent (a type error for an integer field) fails.
func (d *decoder) integer(bits int) int64 {
	start := d.i
	i := start
	if i < len(d.b) && d.b[i] == '-' {
		i++
	}
	digits := i
	for i < len(d.b) && '0' <= d.b[i] && d.b[i] <= '9' {
		i++
	}
	if i == digits || (d.b[digits] == '0' && i > digits+1) {
		d.fail()
	}
	if i < len(d.b) && (d.b[i] == '.' || d.b[i] == 'e' || d.b[i] == 'E') {
		d.fail()
	}
	n, err := strconv.ParseInt(d.s[start:i], 10, bits)
	if err != nil {
		d.fail()
	}
	d.i = i
	return n
}

func (d *decoder) setInt(p *int) {
	if !d.null() {
		*p = int(d.integer(strconv.IntSize))
	}
}

func (d *decoder) setInt64(p *int64) {
	if !d.null() {
		*p = d.integer(64)
	}
}

func (d *decoder) setBool(p *bool) {
	switch {
	case d.literal("true"):
		*p = true
	case d.literal("false"):
		*p = false
	case d.null():
	default:
		d.fail()
	}
}

// setTime decodes a timestamp. encoding/json hands time.Time the raw token;
// the common form, UTC with up to nine fraction digits, is parsed here, and
// everything else goes to time.Time's own UnmarshalJSON.
func (d *decoder) setTime(p *time.Time) {
	if d.null() {
		return
	}
	start := d.i
	s := d.str()
	raw := d.b[start:d.i]
	if len(raw) != len(s)+2 {
		// The string had escapes, which time.Time does not decode: let it
		// judge the raw token.
		d.timeSlow(p, raw)
		return
	}
	if t, ok := parseUTC(s); ok {
		*p = t
		return
	}
	d.timeSlow(p, raw)
}

func (d *decoder) timeSlow(p *time.Time, raw []byte) {
	if err := p.UnmarshalJSON(raw); err != nil {
		d.fail()
	}
}

// parseUTC parses "YYYY-MM-DDTHH:MM:SS[.F{1,9}]Z" exactly as time.Time's
// UnmarshalJSON would, and reports false for anything else. It computes
// the instant directly: time.Date costs several microseconds in a guest.
func parseUTC(s string) (time.Time, bool) {
	if len(s) < 20 || s[4] != '-' || s[7] != '-' || s[10] != 'T' || s[13] != ':' || s[16] != ':' || s[len(s)-1] != 'Z' {
		return time.Time{}, false
	}
	// Subtracting '0' leaves every digit below 10; any other byte wraps
	// to 10 or more, which the OR of all of them reveals at once.
	d := func(i int) uint { return uint(s[i] - '0') }
	if (d(0)|d(1)|d(2)|d(3)|d(5)|d(6)|d(8)|d(9)|d(11)|d(12)|d(14)|d(15)|d(17)|d(18))&^15 != 0 ||
		d(0) > 9 || d(1) > 9 || d(2) > 9 || d(3) > 9 || d(5) > 9 || d(6) > 9 || d(8) > 9 || d(9) > 9 ||
		d(11) > 9 || d(12) > 9 || d(14) > 9 || d(15) > 9 || d(17) > 9 || d(18) > 9 {
		return time.Time{}, false
	}
	year := int(d(0)*1000 + d(1)*100 + d(2)*10 + d(3))
	month := int(d(5)*10 + d(6))
	day := int(d(8)*10 + d(9))
	hour, minute, sec := int(d(11)*10+d(12)), int(d(14)*10+d(15)), int(d(17)*10+d(18))
	if month < 1 || month > 12 || day < 1 || hour > 23 || minute > 59 || sec > 59 || day > daysIn(time.Month(month), year) {
		return time.Time{}, false
	}
	nsec := 0
	if frac := s[19 : len(s)-1]; frac != "" {
		if len(frac) < 2 || len(frac) > 10 || frac[0] != '.' {
			return time.Time{}, false
		}
		for i := 1; i < len(frac); i++ {
			c := frac[i] - '0'
			if c > 9 {
				return time.Time{}, false
			}
			nsec = nsec*10 + int(c)
		}
		for range 10 - len(frac) {
			nsec *= 10
		}
	}
	// Days since 1970-01-01 of a proleptic Gregorian date, counting years
	// from March so that the leap day comes last.
	y := year
	if month <= 2 {
		y--
	}
	era := y / 400 // y >= -1: the quotient is 0 for y == -1, handled below
	if y < 0 {
		era = -1
	}
	yoe := y - era*400
	mp := (month + 9) % 12
	doy := (153*mp+2)/5 + day - 1
	doe := yoe*365 + yoe/4 - yoe/100 + doy
	days := era*146097 + doe - 719468
	unix := int64(days)*86400 + int64(hour*3600+minute*60+sec)
	return time.Unix(unix, int64(nsec)).UTC(), true
}

func daysIn(m time.Month, year int) int {
	switch m {
	case time.February:
		if year%4 == 0 && (year%100 != 0 || year%400 == 0) {
			return 29
		}
		return 28
	case time.April, time.June, time.September, time.November:
		return 30
	}
	return 31
}

// skip reads and discards any JSON value, validating it.
func (d *decoder) skip() {
	switch c := d.peek(); {
	case c == '"':
		d.skipString()
	case c == '{':
		d.nest()
		d.i++
		for first := true; ; first = false {
			d.ws()
			if d.peek() == '}' {
				d.i++
				break
			}
			if !first {
				if d.peek() != ',' {
					d.fail()
				}
				d.i++
				d.ws()
			}
			d.skipString()
			d.colon()
			d.skip()
		}
		d.depth--
	case c == '[':
		d.nest()
		d.i++
		for first := true; ; first = false {
			d.ws()
			if d.peek() == ']' {
				d.i++
				break
			}
			if !first {
				if d.peek() != ',' {
					d.fail()
				}
				d.i++
				d.ws()
			}
			d.skip()
		}
		d.depth--
	case c == '-' || '0' <= c && c <= '9':
		d.skipNumber()
	case d.literal("true"), d.literal("false"), d.literal("null"):
	default:
		d.fail()
	}
}

// nest counts one more level of nesting; deep documents are left to
// encoding/json and its limit.
func (d *decoder) nest() {
	if d.depth++; d.depth > 100 {
		d.fail()
	}
}

// skipString reads a string without keeping it: only its syntax matters.
func (d *decoder) skipString() {
	if d.peek() != '"' {
		d.fail()
	}
	i := d.i + 1
	for i < len(d.b) {
		i = scan(d.b, i)
		if i >= len(d.b) {
			break
		}
		switch c := d.b[i]; {
		case c == '"':
			d.i = i + 1
			return
		case c < 0x20:
			d.fail()
		case c == '\\':
			if i+1 >= len(d.b) {
				d.fail()
			}
			switch d.b[i+1] {
			case '"', '\\', '/', 'b', 'f', 'n', 'r', 't':
				i += 2
			case 'u':
				d.hex4(i + 2)
				i += 6
			default:
				d.fail()
			}
		default: // non-ASCII: any bytes will do
			i++
		}
	}
	d.fail()
}

// skipNumber reads a number per JSON's grammar.
func (d *decoder) skipNumber() {
	i := d.i
	digits := func() int {
		n := 0
		for i < len(d.b) && '0' <= d.b[i] && d.b[i] <= '9' {
			i++
			n++
		}
		return n
	}
	if d.b[i] == '-' {
		i++
	}
	start := i
	if n := digits(); n == 0 || (n > 1 && d.b[start] == '0') {
		d.fail()
	}
	if i < len(d.b) && d.b[i] == '.' {
		i++
		if digits() == 0 {
			d.fail()
		}
	}
	if i < len(d.b) && (d.b[i] == 'e' || d.b[i] == 'E') {
		i++
		if i < len(d.b) && (d.b[i] == '+' || d.b[i] == '-') {
			i++
		}
		if digits() == 0 {
			d.fail()
		}
	}
	d.i = i
}

// Objects with fixed fields. The host writes compact JSON with the keys in
// the order of its structs, which are the order of the SDK's: so each key is
// first predicted, and compared with the input 8 bytes at a time including
// its quotes, colon and the comma before it, with no scanning. From the first
// surprise on (whitespace, another order, an unknown key) keys are read and
// looked up one by one. A repeated key gives up: encoding/json merges it.

// pattern is a byte string to compare with the input, as three masked
// little-endian words.
type pattern struct {
	n    int
	w, m [3]uint64
}

func newPattern(s string) pattern {
	if len(s) > 24 {
		panic("policy: key pattern too long: " + s)
	}
	p := pattern{n: len(s)}
	for i := 0; i < len(s); i++ {
		p.w[i/8] |= uint64(s[i]) << (8 * (i % 8))
		p.m[i/8] |= 0xff << (8 * (i % 8))
	}
	return p
}

// fields describes the keys of an object, in the host's order.
type fields struct {
	names []string
	first pattern   // {"names[0]":
	next  []pattern // ,"names[j]":
}

func newFields(names ...string) *fields {
	f := &fields{names: names, first: newPattern(`{"` + names[0] + `":`)}
	for _, n := range names {
		f.next = append(f.next, newPattern(`,"`+n+`":`))
	}
	return f
}

// match consumes p if the input continues with it.
func (d *decoder) match(p *pattern) bool {
	i := d.i
	if i+24 > len(d.b) {
		return false
	}
	b := d.b[i : i+24]
	x := (binary.LittleEndian.Uint64(b)^p.w[0])&p.m[0] |
		(binary.LittleEndian.Uint64(b[8:])^p.w[1])&p.m[1] |
		(binary.LittleEndian.Uint64(b[16:])^p.w[2])&p.m[2]
	if x != 0 {
		return false
	}
	d.i += p.n
	return true
}

// object reads an object described by f (null leaves it alone), calling
// set with the index of each field, positioned at its value.
func (d *decoder) object(f *fields, set func(j int)) {
	if d.null() {
		return
	}
	var mask uint64
	j := 0
	if d.match(&f.first) {
		mask = 1
		set(0)
		for j = 1; j < len(f.names) && d.match(&f.next[j]); j++ {
			mask |= 1 << j
			set(j)
		}
	} else {
		if d.peek() != '{' {
			d.fail()
		}
		d.i++
	}
	for first := mask == 0; ; first = false {
		k, ok := d.key(first)
		if !ok {
			return
		}
		j := slices.Index(f.names, k)
		if j < 0 {
			d.unknown(k, f.names)
			continue
		}
		if mask&(1<<j) != 0 {
			d.fail()
		}
		mask |= 1 << j
		set(j)
	}
}

var (
	validateFields  = newFields("abi", "now", "action", "cause", "from", "to", "instance", "transition")
	reconcileFields = newFields("abi", "now", "case", "node", "instance", "transition", "status", "observed",
		"disagreeing_ms", "lost_node", "can_adopt")
	observedFields = newFields("present", "power_state", "id")
	instanceFields = newFields("schema", "id", "name", "vm_state", "power_state", "flavor", "old_flavor", "resized_from",
		"image", "project", "user", "metadata", "node", "driver", "fault", "flags", "created_at", "updated_at", "history_seq")
	flavorFields     = newFields("id", "name", "vcpus", "ram_mb", "disk_gb")
	imageFields      = newFields("id", "name", "source", "disk_format")
	faultFields      = newFields("code", "message", "at", "during")
	flagFields       = newFields("kind", "message", "since", "recorded", "observed")
	transitionFields = newFields("schema", "action", "request_id", "steps", "step", "origin", "target", "started_at",
		"step_started_at", "attempt", "node", "flavor", "image", "name")
)

func (d *decoder) validateRequest(q *ValidateRequest) {
	d.object(validateFields, func(j int) {
		switch j {
		case 0:
			d.setInt(&q.ABI)
		case 1:
			d.setTime(&q.Now)
		case 2:
			d.setAction(&q.Action)
		case 3:
			if !d.null() {
				q.Cause = Cause(d.str())
			}
		case 4:
			d.setStatus(&q.From)
		case 5:
			d.setStatus(&q.To)
		case 6:
			d.instance(&q.Instance)
		case 7:
			d.transition(&q.Transition)
		}
	})
}

func (d *decoder) reconcileRequest(q *ReconcileRequest) {
	d.object(reconcileFields, func(j int) {
		switch j {
		case 0:
			d.setInt(&q.ABI)
		case 1:
			d.setTime(&q.Now)
		case 2:
			if !d.null() {
				q.Case = Case(d.str())
			}
		case 3:
			d.setString(&q.Node)
		case 4:
			if !d.null() {
				if q.Instance == nil {
					q.Instance = new(Instance)
				}
				d.instance(q.Instance)
			}
		case 5:
			d.transition(&q.Transition)
		case 6:
			d.setStatus(&q.Status)
		case 7:
			d.object(observedFields, func(j int) {
				switch j {
				case 0:
					d.setBool(&q.Observed.Present)
				case 1:
					d.setString(&q.Observed.PowerState)
				case 2:
					d.setString(&q.Observed.ID)
				}
			})
		case 8:
			d.setInt64(&q.DisagreeingMS)
		case 9:
			d.setString(&q.LostNode)
		case 10:
			d.setBool(&q.CanAdopt)
		}
	})
}

func (d *decoder) instance(in *Instance) {
	d.object(instanceFields, func(j int) {
		switch j {
		case 0:
			d.setInt(&in.Schema)
		case 1:
			d.setString(&in.ID)
		case 2:
			d.setString(&in.Name)
		case 3:
			d.setString(&in.VMState)
		case 4:
			d.setString(&in.PowerState)
		case 5:
			d.flavor(&in.Flavor)
		case 6:
			if !d.null() {
				in.OldFlavor = new(Flavor)
				d.flavor(in.OldFlavor)
			}
		case 7:
			d.setStatus(&in.ResizedFrom)
		case 8:
			d.image(&in.Image)
		case 9:
			d.setString(&in.Project)
		case 10:
			d.setString(&in.User)
		case 11:
			d.args(&in.Metadata)
		case 12:
			d.setString(&in.Node)
		case 13:
			d.setString(&in.Driver)
		case 14:
			d.fault(&in.Fault)
		case 15:
			d.flags(&in.Flags)
		case 16:
			d.setTime(&in.CreatedAt)
		case 17:
			d.setTime(&in.UpdatedAt)
		case 18:
			d.setInt64(&in.HistorySeq)
		}
	})
}

func (d *decoder) flavor(f *Flavor) {
	d.object(flavorFields, func(j int) {
		switch j {
		case 0:
			d.setString(&f.ID)
		case 1:
			d.setString(&f.Name)
		case 2:
			d.setInt(&f.VCPUs)
		case 3:
			d.setInt(&f.RAMMB)
		case 4:
			d.setInt(&f.DiskGB)
		}
	})
}

func (d *decoder) image(i *Image) {
	d.object(imageFields, func(j int) {
		switch j {
		case 0:
			d.setString(&i.ID)
		case 1:
			d.setString(&i.Name)
		case 2:
			d.setString(&i.Source)
		case 3:
			d.setString(&i.DiskFormat)
		}
	})
}

func (d *decoder) fault(p **Fault) {
	if d.null() {
		return
	}
	f := new(Fault)
	*p = f
	d.object(faultFields, func(j int) {
		switch j {
		case 0:
			d.setInt(&f.Code)
		case 1:
			d.setString(&f.Message)
		case 2:
			d.setTime(&f.At)
		case 3:
			d.setAction(&f.During)
		}
	})
}

// array starts reading an array: null leaves the field alone, '[' is
// consumed; ok reports which.
func (d *decoder) array() (ok bool) {
	if d.null() {
		return false
	}
	if d.peek() != '[' {
		d.fail()
	}
	d.i++
	return true
}

// elem moves to the next element of the array being read, or consumes the
// closing ']' and reports false.
func (d *decoder) elem(first bool) bool {
	d.ws()
	if d.peek() == ']' {
		d.i++
		return false
	}
	if !first {
		if d.peek() != ',' {
			d.fail()
		}
		d.i++
		d.ws()
	}
	return true
}

func (d *decoder) flags(p *[]Flag) {
	if !d.array() {
		return
	}
	flags := []Flag{} // encoding/json makes [] an empty, non-nil slice
	for first := true; d.elem(first); first = false {
		var f Flag
		d.object(flagFields, func(j int) {
			switch j {
			case 0:
				d.setString(&f.Kind)
			case 1:
				d.setString(&f.Message)
			case 2:
				d.setTime(&f.Since)
			case 3:
				d.setStatus(&f.Recorded)
			case 4:
				d.setString(&f.Observed)
			}
		})
		flags = append(flags, f)
	}
	*p = flags
}

func (d *decoder) transition(p **Transition) {
	if d.null() {
		return
	}
	t := new(Transition)
	*p = t
	d.object(transitionFields, func(j int) {
		switch j {
		case 0:
			d.setInt(&t.Schema)
		case 1:
			d.setAction(&t.Action)
		case 2:
			d.setString(&t.RequestID)
		case 3:
			d.steps(&t.Steps)
		case 4:
			d.setInt(&t.Step)
		case 5:
			d.setStatus(&t.Origin)
		case 6:
			d.setStatus(&t.Target)
		case 7:
			d.setTime(&t.StartedAt)
		case 8:
			d.setTime(&t.StepStartedAt)
		case 9:
			d.setInt(&t.Attempt)
		case 10:
			d.setString(&t.Node)
		case 11:
			if !d.null() {
				t.Flavor = new(Flavor)
				d.flavor(t.Flavor)
			}
		case 12:
			if !d.null() {
				t.Image = new(Image)
				d.image(t.Image)
			}
		case 13:
			d.setString(&t.Name)
		}
	})
}

func (d *decoder) steps(p *[]Status) {
	if !d.array() {
		return
	}
	steps := make([]Status, 0, 4)
	for first := true; d.elem(first); first = false {
		var s Status
		d.setStatus(&s)
		steps = append(steps, s)
	}
	*p = steps
}

// args reads a map of strings (metadata). Its keys are data, not field
// names: any string will do, and a repeated key overwrites as in
// encoding/json.
func (d *decoder) args(p *map[string]string) {
	if d.null() {
		return
	}
	if d.peek() != '{' {
		d.fail()
	}
	d.i++
	m := make(map[string]string)
	*p = m
	for first := true; ; first = false {
		d.ws()
		if d.peek() == '}' {
			d.i++
			return
		}
		if !first {
			if d.peek() != ',' {
				d.fail()
			}
			d.i++
			d.ws()
		}
		k := d.str()
		d.colon()
		var v string
		d.setString(&v)
		m[k] = v
	}
}
