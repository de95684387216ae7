// Package health turns what the managers of a cluster say about themselves
// into a diagnosis: is the cluster healthy, and if not, why, in plain
// words, and what to do. Without a quorum it names the surviving manager
// that is the safest to restart with --force-new-cluster: the one whose log
// holds the most.
//
// It owns no IO: its input is a Report, each member's own view as one
// manager gathered it (Control.GetClusterHealth, see FromAPI), and its
// output a Diagnosis. `shoal doctor` prints one, and the dashboard shows
// its summary on its top line.
//
//	resp, err := control.GetClusterHealth(ctx, &api.GetClusterHealthRequest{})
//	...
//	d := health.Diagnose(health.FromAPI(resp, time.Now()), health.DefaultOptions())
//	fmt.Println(d.Summary)
package health
