package main

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"strings"
)

// maxSpecBytes is the largest spec the CLI sends: the store's default
// limit on a whole object (store.Config.MaxObjectBytes, 1 MiB), so that a
// spec too large is refused here, with that limit named, rather than by
// gRPC's message size limit on the way.
const maxSpecBytes = 1 << 20

// parseSpec reads a --spec value: inline JSON, @FILE for a file's content,
// or - for standard input. The JSON is checked and compacted here, so bad
// input fails before any call.
func parseSpec(value string, stdin io.Reader) ([]byte, error) {
	var raw []byte
	var from string
	switch {
	case value == "-":
		b, err := io.ReadAll(stdin)
		if err != nil {
			return nil, fmt.Errorf("reading the spec from standard input: %w", err)
		}
		raw, from = b, "standard input"
	case strings.HasPrefix(value, "@"):
		path := value[1:]
		if path == "" {
			return nil, usagef("--spec @FILE needs a file name")
		}
		b, err := os.ReadFile(path)
		if err != nil {
			return nil, usageError{fmt.Errorf("reading the spec: %w", err)}
		}
		raw, from = b, path
	default:
		raw, from = []byte(value), "--spec"
	}
	if len(bytes.TrimSpace(raw)) == 0 {
		return nil, usagef("the spec in %s is empty; give a JSON value such as '{}'", from)
	}
	var v any
	if err := json.Unmarshal(raw, &v); err != nil {
		return nil, usagef("the spec in %s is not valid JSON: %s", from, jsonErrorDetail(raw, err))
	}
	var out bytes.Buffer
	if err := json.Compact(&out, raw); err != nil {
		return nil, usagef("the spec in %s is not valid JSON: %v", from, err)
	}
	if out.Len() > maxSpecBytes {
		return nil, usagef("the spec in %s is %d bytes; an object holds at most 1 MiB (%d bytes) with its name and labels: keep large data elsewhere and store a reference",
			from, out.Len(), maxSpecBytes)
	}
	return out.Bytes(), nil
}

// jsonErrorDetail says where a JSON syntax error is: its Offset counts
// the bytes read, the bad one included.
func jsonErrorDetail(raw []byte, err error) string {
	var se *json.SyntaxError
	if !errors.As(err, &se) || se.Offset < 1 {
		return err.Error()
	}
	line, col := 1, 1
	for _, c := range raw[:min(int(se.Offset)-1, len(raw))] {
		if c == '\n' {
			line, col = line+1, 1
		} else {
			col++
		}
	}
	return fmt.Sprintf("%s (line %d, column %d)", se.Error(), line, col)
}

// parseLabels turns repeated --label k=v values into a map.
func parseLabels(flag string, values []string) (map[string]string, error) {
	if len(values) == 0 {
		return nil, nil
	}
	out := make(map[string]string, len(values))
	for _, v := range values {
		k, val, ok := strings.Cut(v, "=")
		if !ok || k == "" {
			return nil, usagef("--%s %q is not key=value", flag, v)
		}
		if prev, dup := out[k]; dup && prev != val {
			return nil, usagef("--%s gives %q twice with different values", flag, k)
		}
		out[k] = val
	}
	return out, nil
}
