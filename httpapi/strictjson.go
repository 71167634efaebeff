package httpapi

import (
	"bytes"
	"encoding/json"
	"fmt"
	"net/http"
	"reflect"
	"strings"
)

// checkJSONKeys refuses what encoding/json would let through silently in a
// request body: a key given twice in one object (the last would win) and a
// key that matches a field only when case is ignored ({"NAME": ...} for
// "name"). Unknown keys are left to the decoder's DisallowUnknownFields.
// Replicated Raft commands are decoded elsewhere and tolerate unknown
// fields on purpose (rolling upgrades); this is for API requests only.
func checkJSONKeys(body []byte, t reflect.Type) error {
	d := json.NewDecoder(bytes.NewReader(body))
	d.UseNumber()
	if err := walkJSON(d, t, ""); err != nil {
		return errorf(http.StatusBadRequest, "invalid", "malformed JSON: %v", err)
	}
	return nil
}

// walkJSON reads one value from d, checking the keys of every object in it
// against t (nil: anything goes).
func walkJSON(d *json.Decoder, t reflect.Type, path string) error {
	for t != nil && t.Kind() == reflect.Pointer {
		t = t.Elem()
	}
	tok, err := d.Token()
	if err != nil {
		return err
	}
	delim, ok := tok.(json.Delim)
	if !ok {
		return nil
	}
	switch delim {
	case '[':
		var elem reflect.Type
		if t != nil && (t.Kind() == reflect.Slice || t.Kind() == reflect.Array) {
			elem = t.Elem()
		}
		for d.More() {
			if err := walkJSON(d, elem, path+"[]"); err != nil {
				return err
			}
		}
	case '{':
		fields := jsonFields(t)
		seen := map[string]bool{}
		for d.More() {
			kt, err := d.Token()
			if err != nil {
				return err
			}
			k, _ := kt.(string)
			if seen[k] {
				return fmt.Errorf("key %q appears twice in %s", k, objectName(path))
			}
			seen[k] = true
			var vt reflect.Type
			if fields != nil {
				f, exact := fields[k]
				if !exact {
					for name := range fields {
						if strings.EqualFold(name, k) {
							return fmt.Errorf("key %q in %s: keys are case-sensitive (did you mean %q?)", k, objectName(path), name)
						}
					}
				}
				vt = f
			} else if t != nil && t.Kind() == reflect.Map {
				vt = t.Elem()
			}
			if err := walkJSON(d, vt, path+"."+k); err != nil {
				return err
			}
		}
	}
	_, err = d.Token() // the closing delimiter
	return err
}

func objectName(path string) string {
	if path == "" {
		return "the body"
	}
	return strings.TrimPrefix(path, ".")
}

// jsonFields maps the JSON names of a struct's fields (embedded structs
// flattened) to their types; nil when t is not a struct.
func jsonFields(t reflect.Type) map[string]reflect.Type {
	if t == nil || t.Kind() != reflect.Struct {
		return nil
	}
	out := map[string]reflect.Type{}
	for i := 0; i < t.NumField(); i++ {
		f := t.Field(i)
		tag := f.Tag.Get("json")
		if tag == "-" || (!f.IsExported() && !f.Anonymous) {
			continue
		}
		name, _, _ := strings.Cut(tag, ",")
		if f.Anonymous && name == "" {
			ft := f.Type
			if ft.Kind() == reflect.Pointer {
				ft = ft.Elem()
			}
			for k, v := range jsonFields(ft) {
				out[k] = v
			}
			continue
		}
		if name == "" {
			name = f.Name
		}
		out[name] = f.Type
	}
	return out
}
