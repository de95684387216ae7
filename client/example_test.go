package client_test

import (
	"context"
	"fmt"
	"log"
	"time"

	"github.com/shoal-project/shoal/api"
	"github.com/shoal-project/shoal/client"
)

// A client on the local control socket creates an object, reads it back
// from the manager's own copy, and watches its kind.
func Example() {
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()

	// Or client.Config{Addrs: []string{"10.0.0.1:2377", "10.0.0.2:2377"}}.
	c, err := client.New(ctx, client.Config{SocketPath: "/var/lib/shoal/control.sock"})
	if err != nil {
		log.Fatal(err)
	}
	defer c.Close()

	created, err := c.Create(ctx, &api.Object{
		Kind:   "service",
		Name:   "web",
		Labels: map[string]string{"tier": "front"},
		Spec:   []byte(`{"replicas": 3}`),
	})
	switch {
	case client.IsExists(err):
		fmt.Println("service/web exists already")
	case err != nil:
		log.Fatal(err)
	default:
		fmt.Println("created at version", created.GetVersion())
	}

	// Raise the replicas only if nobody changed the object meanwhile.
	obj, err := c.Get(ctx, "service", "web", client.WithConsistency(client.Serializable))
	if err != nil {
		log.Fatal(err)
	}
	_, err = c.Update(ctx, "service", "web", client.Update{
		Spec:            []byte(`{"replicas": 5}`),
		ExpectedVersion: obj.GetVersion(),
	})
	if client.IsConflict(err) {
		fmt.Println("changed by someone else; read it again")
	}

	// List, then watch from the list's version: no change is missed.
	objs, version, err := c.List(ctx, client.Selector{Kind: "service"})
	if err != nil {
		log.Fatal(err)
	}
	fmt.Println(len(objs), "services")
	w, err := c.Watch(ctx, client.Selector{Kind: "service"}, version)
	if err != nil {
		log.Fatal(err)
	}
	defer w.Close()
	for ev, err := range w.Events() {
		if err != nil {
			break // ctx ended, or the manager stopped: watch again from the last version
		}
		fmt.Println(ev.GetType(), ev.GetObject().GetName(), ev.GetVersion())
	}
}
