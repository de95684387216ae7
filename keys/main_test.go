package keys

import (
	"log/slog"
	"strings"
	"testing"

	"go.uber.org/goleak"
)

func TestMain(m *testing.M) {
	goleak.VerifyTestMain(m)
}

// testWriter sends log lines to t.Log, so they show only when a test fails.
type testWriter struct{ t testing.TB }

func (w testWriter) Write(p []byte) (int, error) {
	w.t.Helper()
	w.t.Log(strings.TrimRight(string(p), "\n"))
	return len(p), nil
}

func testConfig(t testing.TB) Config {
	t.Helper()
	return Config{
		Dir:    t.TempDir() + "/keys",
		Logger: slog.New(slog.NewTextHandler(testWriter{t}, &slog.HandlerOptions{Level: slog.LevelDebug})),
	}
}

func mustCreate(t testing.TB, cfg Config) *Keys {
	t.Helper()
	k, err := Create(cfg)
	if err != nil {
		t.Fatalf("Create: %v", err)
	}
	t.Cleanup(k.Close)
	return k
}

// mustOpenUnlocked opens an unlocked key file.
func mustOpenUnlocked(t testing.TB, cfg Config) *Keys {
	t.Helper()
	k, locked, err := Open(cfg)
	if err != nil || locked {
		t.Fatalf("Open: locked %v, error %v; want an unlocked file", locked, err)
	}
	t.Cleanup(k.Close)
	return k
}

func mustSeal(t testing.TB, k *Keys, plain, ad string) []byte {
	t.Helper()
	b, err := k.Seal([]byte(plain), []byte(ad))
	if err != nil {
		t.Fatalf("Seal: %v", err)
	}
	return b
}

func checkOpens(t testing.TB, k *Keys, sealed []byte, ad, want string) {
	t.Helper()
	got, err := k.Open(sealed, []byte(ad))
	if err != nil {
		t.Fatalf("Open: %v", err)
	}
	if string(got) != want {
		t.Fatalf("Open = %q, want %q", got, want)
	}
}
