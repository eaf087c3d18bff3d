package policy

import "encoding/json"

// Hand-written encoding of the hook responses, for the same reason as
// decode.go: encoding/json's reflection is slow in a Go guest. Strings that
// encoding/json would escape (quotes, backslashes, control characters, <, >,
// &, non-ASCII) send the whole response through encoding/json, so the output
// is always byte for byte what json.Marshal gives.

// appendPlain appends s quoted if it needs no escaping, and reports
// whether it could.
func appendPlain(b []byte, s string) ([]byte, bool) {
	for i := 0; i < len(s); i++ {
		switch c := s[i]; {
		case c < 0x20, c >= 0x80, c == '"', c == '\\', c == '<', c == '>', c == '&':
			return b, false
		}
	}
	b = append(b, '"')
	b = append(b, s...)
	return append(b, '"'), true
}

// appendField appends ,"name":"value" unless value is empty and omitted.
func appendField(b []byte, name, value string, omitEmpty bool) ([]byte, bool) {
	if value == "" && omitEmpty {
		return b, true
	}
	b = append(b, ',', '"')
	b = append(b, name...)
	b = append(b, '"', ':')
	return appendPlain(b, value)
}

func marshalVerdict(r verdictResponse) []byte {
	b := make([]byte, 0, 32+len(r.Reason)+len(r.Error))
	if r.Allow {
		b = append(b, `{"allow":true`...)
	} else {
		b = append(b, `{"allow":false`...)
	}
	b, ok1 := appendField(b, "reason", r.Reason, true)
	b, ok2 := appendField(b, "error", r.Error, true)
	if !ok1 || !ok2 {
		b, _ = json.Marshal(r)
		return b
	}
	return append(b, '}')
}

func marshalDecision(r decisionResponse) []byte {
	b := make([]byte, 0, 48+len(r.Status)+len(r.Reason)+len(r.Error))
	b = append(b, `{"decision":`...)
	b, ok0 := appendPlain(b, string(r.Decision.Decision))
	b, ok1 := appendField(b, "status", string(r.Status), true)
	b, ok2 := appendField(b, "reason", r.Reason, true)
	b, ok3 := appendField(b, "error", r.Error, true)
	if !ok0 || !ok1 || !ok2 || !ok3 {
		b, _ = json.Marshal(r)
		return b
	}
	return append(b, '}')
}
