// Package fill sets every field of a value to a distinct non-zero value by
// reflection, for round-trip tests of codecs: a field that an encoder or a
// decoder forgets comes back zero and the comparison fails, so a new field
// cannot be added to a message without being carried. Only tests import it.
package fill

import (
	"fmt"
	"reflect"
	"time"
)

// Filler makes the values; Seed varies them between calls.
type Filler struct {
	Seed int
	// Custom, when it returns true, has set v itself (for fields whose
	// valid values are few: a status, an enum).
	Custom func(path string, v reflect.Value) bool
	// Skip names fields (as Type.Field) left zero.
	Skip map[string]bool
}

// Fill sets every exported field reachable from ptr.
func (f *Filler) Fill(ptr any) {
	v := reflect.ValueOf(ptr)
	if v.Kind() != reflect.Pointer || v.IsNil() {
		panic("fill: want a non-nil pointer")
	}
	f.value(v.Type().Elem().Name(), v.Elem())
}

func (f *Filler) next() int {
	f.Seed++
	return f.Seed
}

var durationType = reflect.TypeOf(time.Duration(0))

func (f *Filler) value(path string, v reflect.Value) {
	if f.Custom != nil && f.Custom(path, v) {
		return
	}
	n := f.next()
	switch v.Kind() {
	case reflect.Bool:
		v.SetBool(true)
	case reflect.Int, reflect.Int8, reflect.Int16, reflect.Int32, reflect.Int64:
		if v.Type() == durationType {
			v.SetInt(int64(n) * int64(time.Millisecond))
		} else {
			v.SetInt(int64(n))
		}
	case reflect.Uint, reflect.Uint8, reflect.Uint16, reflect.Uint32, reflect.Uint64:
		v.SetUint(uint64(n))
	case reflect.Float32, reflect.Float64:
		v.SetFloat(float64(n) + 0.5)
	case reflect.String:
		v.SetString(fmt.Sprintf("%s-%d", path, n))
	case reflect.Slice:
		if v.Type().Elem().Kind() == reflect.Uint8 {
			v.SetBytes([]byte(fmt.Sprintf("bytes of %s %d", path, n)))
			return
		}
		s := reflect.MakeSlice(v.Type(), 2, 2)
		for i := 0; i < 2; i++ {
			f.value(fmt.Sprintf("%s[%d]", path, i), s.Index(i))
		}
		v.Set(s)
	case reflect.Array:
		for i := 0; i < v.Len(); i++ {
			f.value(fmt.Sprintf("%s[%d]", path, i), v.Index(i))
		}
	case reflect.Pointer:
		p := reflect.New(v.Type().Elem())
		f.value(path, p.Elem())
		v.Set(p)
	case reflect.Struct:
		t := v.Type()
		for i := 0; i < t.NumField(); i++ {
			sf := t.Field(i)
			if !sf.IsExported() || f.Skip[t.Name()+"."+sf.Name] {
				continue
			}
			f.value(t.Name()+"."+sf.Name, v.Field(i))
		}
	default:
		panic(fmt.Sprintf("fill: %s: cannot fill a %s", path, v.Kind()))
	}
}
