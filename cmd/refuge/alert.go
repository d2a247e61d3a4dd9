package main

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"slices"
	"strings"
	"time"
	"unicode/utf8"

	"github.com/spf13/cobra"

	"github.com/refuge-project/refuge/internal/alert"
	_ "github.com/refuge-project/refuge/internal/alert/formats"
	"github.com/refuge-project/refuge/internal/alert/webhook"
)

// newAlertCmd is "refuge alert"; its subcommands read and relay alert
// documents.
func newAlertCmd() *cobra.Command {
	cmd := &cobra.Command{
		Use:   "alert",
		Short: "Read alert documents (JMA XML, CAP 1.2, USGS GeoJSON, P2PQuake JSON, ShakeAlert) and sign relay requests",
	}
	cmd.AddCommand(newAlertParseCmd(), newAlertSignCmd())
	return cmd
}

// readAlertFile reads a document of at most alert.MaxDocumentSize bytes
// without reading more of a larger one.
func readAlertFile(path string) ([]byte, error) {
	f, err := os.Open(path)
	if err != nil {
		return nil, err
	}
	defer f.Close()
	data, err := alert.ReadDocument(f)
	if err != nil {
		return nil, fmt.Errorf("%s: %w", path, err)
	}
	return data, nil
}

func newAlertParseCmd() *cobra.Command {
	var asJSON bool
	var format string
	cmd := &cobra.Command{
		Use:   "parse FILE [--json] [--format F]",
		Short: "Print the normalized alert(s) of a document",
		Long: `parse reads an alert document, recognises its format (or takes --format),
checks it strictly and prints the normalized alert: a summary, or with --json
the alert as one JSON object; a feed holding several alerts (or none) as one
object {"alerts": [...]}.
A malformed document exits non-zero with a message naming what is wrong.
Formats: ` + strings.Join(alert.Formats(), ", ") + `.`,
		Args: cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			data, err := readAlertFile(args[0])
			if err != nil {
				return err
			}
			var alerts []*alert.Alert
			if format != "" {
				alerts, err = alert.ParseAllFormat(format, data)
			} else {
				alerts, err = alert.ParseAll(data)
			}
			if err != nil {
				return fmt.Errorf("%s: %w", args[0], err)
			}
			out := cmd.OutOrStdout()
			if asJSON {
				enc := json.NewEncoder(out)
				enc.SetIndent("", "  ")
				if len(alerts) == 1 {
					return enc.Encode(alerts[0])
				}
				return enc.Encode(struct {
					Alerts []*alert.Alert `json:"alerts"`
				}{append([]*alert.Alert{}, alerts...)})
			}
			if len(alerts) == 0 {
				_, err := fmt.Fprintln(out, "no alerts (an empty feed)")
				return err
			}
			for i, a := range alerts {
				if i > 0 {
					fmt.Fprintln(out)
				}
				summarize(out, a)
			}
			return nil
		},
	}
	jsonObjectFlag(cmd, &asJSON, `the alert (several: {"alerts": [...]})`)
	cmd.Flags().StringVar(&format, "format", "", "the document's format, if not to be recognised: "+strings.Join(alert.Formats(), ", "))
	return cmd
}

// maxListed bounds the areas and tsunami forecasts a summary lists.
const maxListed = 12

// summarize prints an alert for people.
func summarize(w io.Writer, a *alert.Alert) {
	p := func(label, format string, args ...any) {
		fmt.Fprintf(w, "  %-13s %s\n", label, fmt.Sprintf(format, args...))
	}
	fmt.Fprintf(w, "%s %s: %s %s (%s), event %s", a.Format, a.Product, a.Kind, a.MsgType, a.Status, a.EventID)
	if a.Serial > 0 {
		fmt.Fprintf(w, " serial %d", a.Serial)
	}
	if a.Final {
		fmt.Fprint(w, " (final)")
	}
	fmt.Fprintln(w)
	p("issued", "%s by %s", a.IssuedAt.Format(time.RFC3339), a.Issuer)
	if a.Headline != "" {
		p("headline", "%s", strings.Join(strings.Fields(a.Headline), " "))
	}
	if !a.OriginTime.IsZero() {
		p("origin", "%s", a.OriginTime.Format(time.RFC3339))
	}
	if h := a.Hypocenter; h != nil {
		s := fmt.Sprintf("lat %g lon %g", h.Lat, h.Lon)
		if h.DepthKm != nil {
			s += fmt.Sprintf(", depth %g km", *h.DepthKm)
		}
		if h.Name != "" {
			s += ", " + h.Name
		}
		p("hypocenter", "%s", s)
	}
	if m := a.Magnitude; m != nil {
		p("magnitude", "%g %s", m.Value, m.Type)
	}
	if a.MaxIntensity != alert.IntensityUnknown {
		p("max intensity", "%s (JMA)", a.MaxIntensity)
	}
	if len(a.Areas) > 0 {
		p("areas", "%d", len(a.Areas))
		for _, ar := range a.Areas[:min(len(a.Areas), maxListed)] {
			fmt.Fprintf(w, "    %s\n", describeArea(&ar))
		}
		more(w, len(a.Areas))
	}
	if len(a.Tsunami) > 0 {
		p("tsunami", "%d forecast areas", len(a.Tsunami))
		for _, f := range a.Tsunami[:min(len(a.Tsunami), maxListed)] {
			fmt.Fprintf(w, "    %s\n", describeTsunami(&f))
		}
		more(w, len(a.Tsunami))
	}
	for _, r := range a.References {
		p("refers to", "%s from %s, %s", r.ID, r.Sender, r.Sent.Format(time.RFC3339))
	}
	p("digest", "%s", a.Digest)
}

func more(w io.Writer, n int) {
	if n > maxListed {
		fmt.Fprintf(w, "    … and %d more (--json lists all)\n", n-maxListed)
	}
}

func describeArea(ar *alert.Area) string {
	parts := []string{ar.Name}
	for _, c := range ar.Codes {
		parts = append(parts, fmt.Sprintf("[%s %s]", c.Scheme, c.Value))
	}
	if ar.Intensity != alert.IntensityUnknown {
		parts = append(parts, "intensity "+ar.Intensity.String())
	}
	if !ar.ArrivalTime.IsZero() {
		parts = append(parts, "arrival "+ar.ArrivalTime.Format(time.RFC3339))
	}
	if ar.Arrived {
		parts = append(parts, "(arrived)")
	}
	if n := len(ar.Polygons); n > 0 {
		parts = append(parts, fmt.Sprintf("%d polygon(s)", n))
	}
	for _, c := range ar.Circles {
		parts = append(parts, fmt.Sprintf("circle lat %g lon %g radius %g km", c.Center.Lat(), c.Center.Lon(), c.RadiusKm))
	}
	return strings.Join(slices.DeleteFunc(parts, func(s string) bool { return s == "" }), " ")
}

func describeTsunami(f *alert.TsunamiForecast) string {
	s := f.Name
	if f.Code != "" {
		s += " [" + f.Code + "]"
	}
	s += " " + f.Category.String()
	switch {
	case !f.ArrivalTime.IsZero():
		s += ", arrival " + f.ArrivalTime.Format(time.RFC3339)
	case f.Immediate:
		s += ", now (" + f.Condition + ")"
	}
	switch {
	case f.MaxHeightM != nil:
		s += fmt.Sprintf(", up to %g m", *f.MaxHeightM)
	case f.HeightText != "":
		s += ", height " + f.HeightText
	}
	return s
}

// secretEnv is the environment variable sign reads the secret from when
// --secret-file is not given (keeping it out of ps and shell history).
const secretEnv = "REFUGE_RELAY_SECRET"

// relaySecret returns the relay's secret for alert sign: the content of
// --secret-file (surrounding white space removed), else the deprecated
// --secret, else the environment.
func relaySecret(file, argv string) (string, error) {
	switch {
	case file != "" && argv != "":
		return "", errors.New("give the secret once: --secret-file or the deprecated --secret, not both")
	case file != "":
		data, err := os.ReadFile(file)
		if err != nil {
			return "", fmt.Errorf("--secret-file: %w", err)
		}
		s := strings.TrimSpace(string(data))
		if s == "" {
			return "", fmt.Errorf("--secret-file %s is empty", file)
		}
		return s, nil
	case argv != "":
		return argv, nil
	case os.Getenv(secretEnv) != "":
		return os.Getenv(secretEnv), nil
	}
	return "", fmt.Errorf("no secret: give --secret-file or set %s", secretEnv)
}

func newAlertSignCmd() *cobra.Command {
	var secret, secretFile, relay, url, nonce string
	var unix int64
	var asJSON bool
	cmd := &cobra.Command{
		Use:   "sign FILE [--secret-file F] [--relay ID] [--url URL] [--timestamp UNIX] [--nonce N] [--json]",
		Short: "Print a signed relay webhook request carrying a document, for relay apps to imitate",
		Long: `sign prints the HTTP request a relay app sends to refuge's alert webhook to
forward FILE: the headers (X-Refuge-Relay, X-Refuge-Timestamp and
X-Refuge-Signature = "sha256=" + hex HMAC-SHA256 of timestamp + "." + body
under the relay's secret), the JSON body, and the same request as a curl
command. FILE is an alert document (embedded in the body as "document"; it
must parse) or a relay body already. The secret comes from --secret-file (the
file's content, surrounding white space removed) or the ` + secretEnv + `
environment variable; --secret, which shows it in ps and shell history, is
deprecated. See docs/alerts.md.`,
		Args: cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			key, err := relaySecret(secretFile, secret)
			if err != nil {
				return err
			}
			data, err := readAlertFile(args[0])
			if err != nil {
				return err
			}
			body, err := relayBody(data, &relay, nonce)
			if err != nil {
				return fmt.Errorf("%s: %w", args[0], err)
			}
			ts := time.Now()
			if cmd.Flags().Changed("timestamp") {
				ts = time.Unix(unix, 0)
			}
			req, err := webhook.NewRequest(context.Background(), url, relay, []byte(key), body, ts)
			if err != nil {
				return err
			}
			return printRequest(cmd.OutOrStdout(), req.Header, url, body, asJSON)
		},
	}
	cmd.Flags().StringVar(&secretFile, "secret-file", "", "file holding the relay's shared secret (at least 16 bytes; or set "+secretEnv+")")
	cmd.Flags().StringVar(&secret, "secret", "", "the relay's shared secret")
	_ = cmd.Flags().MarkDeprecated("secret", "a secret on the command line shows in ps and in shell history: use --secret-file or "+secretEnv)
	cmd.Flags().StringVar(&relay, "relay", "", `relay id (default: the body's relay_id, or "refuge-cli")`)
	cmd.Flags().StringVar(&url, "url", "http://127.0.0.1:8080/v1/alerts/relay", "the webhook's URL")
	cmd.Flags().StringVar(&nonce, "nonce", "", "a nonce to put in the body (to send the same document twice within a second)")
	cmd.Flags().Int64Var(&unix, "timestamp", 0, "sign as of this Unix time instead of now")
	jsonObjectFlag(cmd, &asJSON, "the request ({method, url, headers, body, curl})")
	return cmd
}

// relayBody returns the relay body for a file: the file itself when it is
// a relay body, otherwise a body embedding it as its document. relay is
// the --relay flag, filled in from the body when empty.
func relayBody(data []byte, relay *string, nonce string) ([]byte, error) {
	if format, err := alert.Sniff(data); err == nil && format == webhook.FormatName {
		b, _, err := webhook.ParseBody(data)
		if err != nil {
			return nil, err
		}
		if *relay == "" {
			*relay = b.RelayID
		}
		if b.RelayID != *relay || nonce != "" {
			return nil, fmt.Errorf("a relay body is signed as it is: its relay_id is %q; drop --relay and --nonce or edit the body", b.RelayID)
		}
		return data, nil
	}
	if *relay == "" {
		*relay = "refuge-cli"
	}
	if !utf8.Valid(data) {
		return nil, errors.New("the document is not UTF-8 text, which a JSON body cannot carry unchanged")
	}
	if _, err := alert.ParseAll(data); err != nil {
		return nil, err
	}
	var buf bytes.Buffer
	enc := json.NewEncoder(&buf)
	enc.SetEscapeHTML(false) // keep the document's < and > readable
	if err := enc.Encode(webhook.Body{Version: webhook.BodyVersion, RelayID: *relay, Nonce: nonce, Document: string(data)}); err != nil {
		return nil, err
	}
	body := bytes.TrimSuffix(buf.Bytes(), []byte("\n"))
	if _, _, err := webhook.ParseBody(body); err != nil {
		return nil, fmt.Errorf("relay body: %w", err)
	}
	return body, nil
}

// signedHeaders are the request headers sign prints, in order.
var signedHeaders = []string{"Content-Type", webhook.HeaderRelay, webhook.HeaderTimestamp, webhook.HeaderSignature}

func printRequest(w io.Writer, h map[string][]string, url string, body []byte, asJSON bool) error {
	curl := []string{"curl -sS -X POST " + shellQuote(url)}
	headers := map[string]string{}
	for _, k := range signedHeaders {
		v := h[k][0]
		headers[k] = v
		curl = append(curl, "-H "+shellQuote(k+": "+v))
	}
	curl = append(curl, "--data-binary "+shellQuote(string(body)))
	curlCmd := strings.Join(curl, " \\\n  ")
	if asJSON {
		enc := json.NewEncoder(w)
		enc.SetIndent("", "  ")
		return enc.Encode(map[string]any{"method": "POST", "url": url, "headers": headers, "body": string(body), "curl": curlCmd})
	}
	fmt.Fprintf(w, "POST %s\n", url)
	for _, k := range signedHeaders {
		fmt.Fprintf(w, "%s: %s\n", k, headers[k])
	}
	fmt.Fprintf(w, "\n%s\n\n# signed string: %s + \".\" + body (HMAC-SHA256 with the relay's secret)\n# the same request with curl:\n%s\n",
		body, headers[webhook.HeaderTimestamp], curlCmd)
	return nil
}

// shellQuote quotes s for a POSIX shell.
func shellQuote(s string) string {
	return "'" + strings.ReplaceAll(s, "'", `'\''`) + "'"
}
