package main

import (
	"encoding/json"
	"fmt"
	"io"
	"maps"
	"slices"
	"strings"
	"text/tabwriter"
	"time"

	"github.com/spf13/cobra"
	"google.golang.org/protobuf/types/known/timestamppb"
	"sigs.k8s.io/yaml"

	"github.com/shoal-project/shoal/api"
	"github.com/shoal-project/shoal/backup"
)

// format is how a command prints what it read.
type format string

const (
	formatTable format = "table"
	formatJSON  format = "json"
	formatYAML  format = "yaml"
)

func addOutputFlag(cmd *cobra.Command, out *string, def format) {
	cmd.Flags().StringVarP(out, "output", "o", string(def), "output format: table, json or yaml")
	_ = cmd.RegisterFlagCompletionFunc("output", cobra.FixedCompletions(
		[]string{"table", "json", "yaml"}, cobra.ShellCompDirectiveNoFileComp))
}

func parseFormat(s string) (format, error) {
	switch f := format(s); f {
	case formatTable, formatJSON, formatYAML:
		return f, nil
	}
	return "", usagef("-o %q: choose table, json or yaml", s)
}

// objectView is an object as printed: the spec as the JSON value it is,
// not as bytes.
type objectView struct {
	Kind      string            `json:"kind"`
	ID        string            `json:"id"`
	Name      string            `json:"name"`
	Labels    map[string]string `json:"labels,omitempty"`
	Spec      json.RawMessage   `json:"spec,omitempty"`
	Version   uint64            `json:"version"`
	CreatedAt *time.Time        `json:"created_at,omitempty"`
	UpdatedAt *time.Time        `json:"updated_at,omitempty"`
}

func viewObject(o *api.Object) objectView {
	return objectView{
		Kind: o.GetKind(), ID: o.GetId(), Name: o.GetName(), Labels: o.GetLabels(),
		Spec: specValue(o.GetSpec()), Version: o.GetVersion(),
		CreatedAt: timestamp(o.GetCreatedAt()), UpdatedAt: timestamp(o.GetUpdatedAt()),
	}
}

func timestamp(ts *timestamppb.Timestamp) *time.Time {
	if ts == nil {
		return nil
	}
	t := ts.AsTime().UTC()
	return &t
}

// specValue is the spec as a JSON value: itself when it is JSON, else a
// JSON string of its text (other clients may store any bytes).
func specValue(spec []byte) json.RawMessage {
	if len(spec) == 0 {
		return nil
	}
	if json.Valid(spec) {
		return json.RawMessage(spec)
	}
	b, _ := json.Marshal(string(spec))
	return b
}

// listView is what ls prints as JSON or YAML: the objects and the version
// they were read at (watch --from-version VERSION misses nothing after it).
type listView struct {
	Version uint64       `json:"version"`
	Items   []objectView `json:"items"`
}

type eventView struct {
	Type    string     `json:"type"`
	Version uint64     `json:"version"`
	Object  objectView `json:"object"`
}

func viewEvent(ev *api.WatchEvent) eventView {
	return eventView{Type: eventType(ev.GetType()), Version: ev.GetVersion(), Object: viewObject(ev.GetObject())}
}

func eventType(t api.EventType) string {
	switch t {
	case api.EventType_EVENT_TYPE_CREATE:
		return "create"
	case api.EventType_EVENT_TYPE_UPDATE:
		return "update"
	case api.EventType_EVENT_TYPE_DELETE:
		return "delete"
	}
	return "unknown"
}

// memberView is a manager as node ls prints it. last_contact_ms is as the
// API gives it: -1 when the answering manager never heard from the member,
// 0 for the answering manager itself. match_index and lag are known only
// when the leader answered (0 otherwise).
type memberView struct {
	NodeID        string `json:"node_id"`
	RaftID        string `json:"raft_id"`
	Addr          string `json:"addr"`
	Suffrage      string `json:"suffrage"`
	AutoPromote   bool   `json:"auto_promote"`
	Role          string `json:"role"`
	Reachable     bool   `json:"reachable"`
	LastContactMs int64  `json:"last_contact_ms"`
	MatchIndex    uint64 `json:"match_index"`
	Lag           uint64 `json:"lag"`
}

func viewMember(m *api.Member) memberView {
	return memberView{NodeID: m.GetNodeId(), RaftID: raftID(m.GetRaftId()), Addr: m.GetAddr(),
		Suffrage: suffrage(m), AutoPromote: m.GetAutoPromote(), Role: m.GetRole(), Reachable: m.GetReachable(),
		LastContactMs: m.GetLastContactMs(), MatchIndex: m.GetMatchIndex(), Lag: m.GetLag()}
}

// Suffrages of a member: a learner receives the log but does not vote.
const (
	suffrageVoter   = "voter"
	suffrageLearner = "learner"
)

// suffrage is the member's suffrage; a manager too old to say is a voter,
// as every member was before learners.
func suffrage(m *api.Member) string {
	if s := m.GetSuffrage(); s != "" {
		return s
	}
	return suffrageVoter
}

func isLearner(m *api.Member) bool { return suffrage(m) == suffrageLearner }

type clusterView struct {
	ClusterID        string      `json:"cluster_id"`
	Manager          *memberView `json:"manager,omitempty"`
	LeaderRaftID     string      `json:"leader_raft_id"`
	LeaderAddr       string      `json:"leader_addr"`
	Term             uint64      `json:"term"`
	CommitIndex      uint64      `json:"commit_index"`
	AppliedIndex     uint64      `json:"applied_index"`
	StoreVersion     uint64      `json:"store_version"`
	Members          uint32      `json:"members"`
	ReachableMembers uint32      `json:"reachable_members"`
}

func viewCluster(c *api.GetClusterInfoResponse) clusterView {
	v := clusterView{ClusterID: c.GetClusterId(), LeaderRaftID: raftID(c.GetLeaderRaftId()), LeaderAddr: c.GetLeaderAddr(),
		Term: c.GetTerm(), CommitIndex: c.GetCommitIndex(), AppliedIndex: c.GetAppliedIndex(),
		StoreVersion: c.GetStoreVersion(), Members: c.GetMembers(), ReachableMembers: c.GetReachableMembers()}
	if c.GetManager() != nil {
		m := viewMember(c.GetManager())
		v.Manager = &m
	}
	return v
}

// raftID prints a Raft ID in hex, as the API accepts it; empty for none.
func raftID(id uint64) string {
	if id == 0 {
		return ""
	}
	return fmt.Sprintf("%x", id)
}

// writeStructured prints v as indented JSON or as YAML.
func writeStructured(w io.Writer, f format, v any) error {
	b, err := json.MarshalIndent(v, "", "  ")
	if err != nil {
		return err
	}
	if f == formatYAML {
		if b, err = yaml.JSONToYAML(b); err != nil {
			return err
		}
		_, err = w.Write(b)
		return err
	}
	_, err = fmt.Fprintf(w, "%s\n", b)
	return err
}

func writeObject(w io.Writer, f format, o *api.Object) error {
	if f != formatTable {
		return writeStructured(w, f, viewObject(o))
	}
	v := viewObject(o)
	tw := tabwriter.NewWriter(w, 0, 4, 2, ' ', 0)
	fmt.Fprintf(tw, "kind:\t%s\n", v.Kind)
	fmt.Fprintf(tw, "name:\t%s\n", v.Name)
	fmt.Fprintf(tw, "id:\t%s\n", v.ID)
	fmt.Fprintf(tw, "version:\t%d\n", v.Version)
	fmt.Fprintf(tw, "labels:\t%s\n", labelString(v.Labels))
	fmt.Fprintf(tw, "created:\t%s\n", timeString(v.CreatedAt))
	fmt.Fprintf(tw, "updated:\t%s\n", timeString(v.UpdatedAt))
	if err := tw.Flush(); err != nil {
		return err
	}
	if len(v.Spec) == 0 {
		_, err := fmt.Fprintln(w, "spec:     (none)")
		return err
	}
	spec, err := json.MarshalIndent(v.Spec, "  ", "  ")
	if err != nil {
		return err
	}
	_, err = fmt.Fprintf(w, "spec:\n  %s\n", spec)
	return err
}

// listWriter prints a list page by page as it arrives, holding one page:
// a table (its columns aligned within each page), or JSON written as
// json.MarshalIndent writes a listView. YAML, whose keys come sorted with
// "items" before "version", is held whole and printed at the end.
type listWriter struct {
	w       io.Writer
	f       format
	started bool
	items   int
	held    listView // for YAML
}

func (lw *listWriter) page(objs []*api.Object, version uint64) error {
	switch lw.f {
	case formatYAML:
		lw.held.Version = version
		for _, o := range objs {
			lw.held.Items = append(lw.held.Items, viewObject(o))
		}
		return nil
	case formatJSON:
		if !lw.started {
			lw.started = true
			if _, err := fmt.Fprintf(lw.w, "{\n  \"version\": %d,\n  \"items\": [", version); err != nil {
				return err
			}
		}
		for _, o := range objs {
			b, err := json.MarshalIndent(viewObject(o), "    ", "  ")
			if err != nil {
				return err
			}
			sep := ",\n    "
			if lw.items == 0 {
				sep = "\n    "
			}
			lw.items++
			if _, err := fmt.Fprintf(lw.w, "%s%s", sep, b); err != nil {
				return err
			}
		}
		return nil
	}
	tw := tabwriter.NewWriter(lw.w, 0, 4, 2, ' ', 0)
	if !lw.started {
		lw.started = true
		fmt.Fprintln(tw, "NAME\tID\tVERSION\tLABELS\tUPDATED")
	}
	for _, o := range objs {
		fmt.Fprintf(tw, "%s\t%s\t%d\t%s\t%s\n", o.GetName(), o.GetId(), o.GetVersion(),
			labelString(o.GetLabels()), timeString(timestamp(o.GetUpdatedAt())))
	}
	return tw.Flush()
}

// end finishes the list.
func (lw *listWriter) end() error {
	switch lw.f {
	case formatYAML:
		if lw.held.Items == nil {
			lw.held.Items = []objectView{}
		}
		return writeStructured(lw.w, lw.f, lw.held)
	case formatJSON:
		closing := "\n  ]\n}\n"
		if lw.items == 0 {
			closing = "]\n}\n"
		}
		_, err := io.WriteString(lw.w, closing)
		return err
	}
	return nil
}

// writeEvent prints one watch event: a line in a table, a line of JSON, or
// a YAML document.
func writeEvent(w io.Writer, f format, ev *api.WatchEvent) error {
	switch f {
	case formatJSON:
		b, err := json.Marshal(viewEvent(ev))
		if err != nil {
			return err
		}
		_, err = fmt.Fprintf(w, "%s\n", b)
		return err
	case formatYAML:
		if _, err := io.WriteString(w, "---\n"); err != nil {
			return err
		}
		return writeStructured(w, f, viewEvent(ev))
	}
	o := ev.GetObject()
	_, err := fmt.Fprintf(w, "%-8d %-6s %s/%s id=%s labels=%s\n", ev.GetVersion(), eventType(ev.GetType()),
		o.GetKind(), o.GetName(), o.GetId(), labelString(o.GetLabels()))
	return err
}

// writeMembers prints the managers of a ListMembers answer, given by the
// manager with Raft ID answeredBy.
func writeMembers(w io.Writer, f format, members []*api.Member, answeredBy uint64) error {
	if f != formatTable {
		views := make([]memberView, 0, len(members))
		for _, m := range members {
			views = append(views, viewMember(m))
		}
		return writeStructured(w, f, views)
	}
	byLeader := answeredByLeader(members, answeredBy)
	tw := tabwriter.NewWriter(w, 0, 4, 2, ' ', 0)
	fmt.Fprintln(tw, "NODE ID\tRAFT ID\tADDRESS\tSUFFRAGE\tROLE\tREACHABLE\tLAST CONTACT\tMATCH INDEX\tLAG")
	for _, m := range members {
		v := viewMember(m)
		suff := v.Suffrage
		if v.AutoPromote && isLearner(m) {
			suff += " (to be promoted)"
		}
		contact := lastContact(v.LastContactMs)
		if m.GetRaftId() == answeredBy {
			contact = "-"
		}
		match, lag := "-", "-"
		if byLeader {
			match, lag = fmt.Sprint(v.MatchIndex), fmt.Sprint(v.Lag)
		}
		fmt.Fprintf(tw, "%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\n", v.NodeID, v.RaftID, v.Addr, suff, v.Role,
			yesNo(v.Reachable), contact, match, lag)
	}
	return tw.Flush()
}

// answeredByLeader tells whether the member that answered leads: only the
// leader knows how far each member's log matches.
func answeredByLeader(members []*api.Member, answeredBy uint64) bool {
	for _, m := range members {
		if m.GetRaftId() == answeredBy {
			return m.GetRole() == "leader"
		}
	}
	return false
}

// lastContact prints how long ago a member was last heard from, for people:
// "120ms", "3s", "4m12s", "2h5m", "3d4h"; "never" for -1.
func lastContact(ms int64) string {
	if ms < 0 {
		return "never"
	}
	d := time.Duration(ms) * time.Millisecond
	switch {
	case d < time.Second:
		return fmt.Sprintf("%dms", ms)
	case d < time.Minute:
		return fmt.Sprintf("%ds", d/time.Second)
	case d < time.Hour:
		return fmt.Sprintf("%dm%ds", d/time.Minute, d%time.Minute/time.Second)
	case d < 24*time.Hour:
		return fmt.Sprintf("%dh%dm", d/time.Hour, d%time.Hour/time.Minute)
	}
	return fmt.Sprintf("%dd%dh", d/(24*time.Hour), d%(24*time.Hour)/time.Hour)
}

// writeCluster prints a GetClusterInfo answer; members, when known, are
// the managers as the leader sees them, which the table counts by suffrage.
func writeCluster(w io.Writer, f format, info *api.GetClusterInfoResponse, members []*api.Member) error {
	v := viewCluster(info)
	if f != formatTable {
		return writeStructured(w, f, v)
	}
	leader := "none (an election is under way, or a quorum is unreachable)"
	if v.LeaderRaftID != "" {
		leader = v.LeaderRaftID + " at " + v.LeaderAddr
	}
	tw := tabwriter.NewWriter(w, 0, 4, 2, ' ', 0)
	fmt.Fprintf(tw, "cluster id:\t%s\n", orNone(v.ClusterID))
	if v.Manager != nil {
		fmt.Fprintf(tw, "answered by:\t%s (raft id %s, %s, %s, %s)\n", v.Manager.NodeID, v.Manager.RaftID, v.Manager.Addr,
			v.Manager.Suffrage, v.Manager.Role)
	}
	fmt.Fprintf(tw, "leader:\t%s\n", leader)
	fmt.Fprintf(tw, "managers:\t%d (%d reachable)\n", v.Members, v.ReachableMembers)
	if len(members) > 0 {
		c := countSuffrage(members)
		fmt.Fprintf(tw, "voters:\t%d (%d reachable)\n", c.voters, c.votersUp)
		learners := fmt.Sprintf("%d", c.learners)
		if c.learners > 0 {
			learners += fmt.Sprintf(" (%d reachable, %d to be promoted)", c.learnersUp, c.toPromote)
		}
		fmt.Fprintf(tw, "learners:\t%s\n", learners)
	}
	fmt.Fprintf(tw, "term:\t%d\n", v.Term)
	fmt.Fprintf(tw, "commit index:\t%d\n", v.CommitIndex)
	fmt.Fprintf(tw, "applied index:\t%d\n", v.AppliedIndex)
	fmt.Fprintf(tw, "store version:\t%d\n", v.StoreVersion)
	return tw.Flush()
}

// suffrageCount counts the voters and the learners, and those reachable.
type suffrageCount struct {
	voters, votersUp, learners, learnersUp, toPromote int
}

func countSuffrage(members []*api.Member) suffrageCount {
	var c suffrageCount
	for _, m := range members {
		if isLearner(m) {
			c.learners++
			if m.GetReachable() {
				c.learnersUp++
			}
			if m.GetAutoPromote() {
				c.toPromote++
			}
			continue
		}
		c.voters++
		if m.GetReachable() {
			c.votersUp++
		}
	}
	return c
}

// labelString prints labels as k=v,k=v in key order; "-" for none.
func labelString(labels map[string]string) string {
	if len(labels) == 0 {
		return "-"
	}
	parts := make([]string, 0, len(labels))
	for _, k := range slices.Sorted(maps.Keys(labels)) {
		parts = append(parts, k+"="+labels[k])
	}
	return strings.Join(parts, ",")
}

func timeString(t *time.Time) string {
	if t == nil {
		return "-"
	}
	return t.UTC().Format(time.RFC3339)
}

func yesNo(b bool) string {
	if b {
		return "yes"
	}
	return "no"
}

func orNone(s string) string {
	if s == "" {
		return "(none yet)"
	}
	return s
}

// backupView is a backup as snapshot inspect prints it.
type backupView struct {
	File         string            `json:"file"`
	Format       uint32            `json:"format"`
	ClusterID    string            `json:"cluster_id"`
	NodeID       string            `json:"node_id"`
	ShoalVersion string            `json:"shoal_version"`
	CreatedAt    *time.Time        `json:"created_at"`
	RaftIndex    uint64            `json:"raft_index"`
	Objects      map[string]uint64 `json:"objects"`
	ObjectsTotal uint64            `json:"objects_total"`
	Bytes        int64             `json:"bytes"`
	SHA256       string            `json:"sha256"`
	Encrypted    bool              `json:"encrypted"`
	// ObjectsChecked says the objects were read and checked, not only
	// the checksum: false for an encrypted backup without its key.
	ObjectsChecked bool `json:"objects_checked"`
}

func writeBackupInfo(w io.Writer, f format, file string, info *backup.Info) error {
	h := info.Header
	v := backupView{File: file, Format: h.GetFormat(), ClusterID: h.GetClusterId(), NodeID: h.GetNodeId(),
		ShoalVersion: h.GetShoalVersion(), CreatedAt: timestamp(h.GetCreatedAt()), RaftIndex: h.GetRaftIndex(),
		Objects: h.GetObjects(), ObjectsTotal: info.Objects(), Bytes: info.Size, SHA256: info.SHA256,
		Encrypted: h.GetEncrypted(), ObjectsChecked: info.Verified}
	if v.Objects == nil {
		v.Objects = map[string]uint64{}
	}
	if f != formatTable {
		return writeStructured(w, f, v)
	}
	checked := "the checksum and every object"
	encrypted := "no"
	if v.Encrypted {
		encrypted = "yes (AES-256-GCM)"
		if !v.ObjectsChecked {
			checked = "the checksum only (the objects are encrypted: give --key-file to check them too)"
		}
	}
	created := "unknown"
	if v.CreatedAt != nil {
		created = v.CreatedAt.Format(time.RFC3339)
	}
	tw := tabwriter.NewWriter(w, 0, 4, 2, ' ', 0)
	fmt.Fprintf(tw, "backup:\t%s: sound\n", file)
	fmt.Fprintf(tw, "checked:\t%s\n", checked)
	fmt.Fprintf(tw, "format:\t%d\n", v.Format)
	fmt.Fprintf(tw, "cluster id:\t%s\n", v.ClusterID)
	fmt.Fprintf(tw, "taken by:\t%s (shoal %s)\n", v.NodeID, v.ShoalVersion)
	fmt.Fprintf(tw, "taken at:\t%s\n", created)
	fmt.Fprintf(tw, "raft index:\t%d\n", v.RaftIndex)
	fmt.Fprintf(tw, "objects:\t%d (%s)\n", v.ObjectsTotal, backup.CountsString(v.Objects))
	fmt.Fprintf(tw, "size:\t%d bytes\n", v.Bytes)
	fmt.Fprintf(tw, "sha256:\t%s\n", v.SHA256)
	fmt.Fprintf(tw, "encrypted:\t%s\n", encrypted)
	return tw.Flush()
}
