package storage

import (
	"bytes"
	"errors"
	"log/slog"
	"strings"
	"testing"

	"go.uber.org/zap"
)

func TestEtcdLogsReachSlog(t *testing.T) {
	var buf bytes.Buffer
	logger := slog.New(slog.NewTextHandler(&buf, &slog.HandlerOptions{Level: slog.LevelInfo}))
	lg := zapLogger(logger, "wal").With(zap.String("dir", "/d"))

	lg.Debug("dropped below the handler's level")
	lg.Info("repairing", zap.String("path", "/d/x.wal"), zap.Int64("bytes", 42))
	lg.Warn("failed to fsync", zap.Error(errors.New("disk on fire")))
	lg.Error("failed to close")

	got := buf.String()
	t.Log(got)
	for _, want := range []string{
		`level=INFO msg=repairing component=etcd-wal dir=/d bytes=42 path=/d/x.wal`,
		`level=WARN msg="failed to fsync" component=etcd-wal dir=/d error="disk on fire"`,
		`level=ERROR msg="failed to close" component=etcd-wal dir=/d`,
	} {
		if !strings.Contains(got, want) {
			t.Errorf("log lacks %q", want)
		}
	}
	if strings.Contains(got, "dropped") {
		t.Error("a debug message passed an info handler")
	}
}
