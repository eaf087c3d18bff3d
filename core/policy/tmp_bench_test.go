package policy

import (
	"context"
	"testing"
)

func BenchmarkTmpParts(b *testing.B) {
	ctx := context.Background()
	e, _ := NewEngine(ctx, EngineConfig{})
	defer e.Close(ctx)
	m, err := e.Load(ctx, Config{Name: "validate", Hook: HookValidate, Path: RawGuestWasm})
	if err != nil {
		b.Fatal(err)
	}
	g, _ := m.acquire(ctx)
	defer m.release(g, true)
	for _, n := range []uint64{} {
		b.Run("alloc", func(b *testing.B) {
			for b.Loop() {
				if _, err := g.alloc.Call(ctx, n); err != nil {
					b.Fatal(err)
				}
			}
		})
	}
	b.Run("info", func(b *testing.B) {
		fn := g.mod.ExportedFunction(exportInfo)
		for b.Loop() {
			fn.Call(ctx)
		}
	})
	b.Run("validate-small", func(b *testing.B) {
		for b.Loop() {
			if _, err := g.call(ctx, []byte(`{"instance":{"name":"ok"}}`), DefaultTimeout); err != nil {
				b.Fatal(err)
			}
		}
	})
	b.Run("validate-small-notimeout", func(b *testing.B) {
		in := []byte(`{"instance":{"name":"ok"}}`)
		for b.Loop() {
			res, _ := g.alloc.Call(ctx, uint64(len(in)))
			g.mod.Memory().Write(uint32(res[0]), in)
			g.hook.Call(ctx, res[0], uint64(len(in)))
		}
	})
}
