using System.Globalization;
using System.Net;
using System.Text;
using System.Text.Json;
using EptFuzz.Harness.Reporting;

namespace EptFuzz.Harness.Fuzzing;

/// <summary>
/// <c>eptfuzz report OUT</c>: one self-contained HTML page (no scripts, no external files):
/// the counters, coverage, exec/s and probes/s over time as inline SVG, the rules hit, and every finding
/// with its reduced case and each side's walk drawn as a tree.
/// </summary>
public static class HtmlReport
{
    public const string FileName = "report.html";

    /// <summary>Writes OUT/report.html (atomically) and returns its path.</summary>
    public static string Write(string outDir)
    {
        ArgumentNullException.ThrowIfNull(outDir);
        CampaignStats stats = CampaignStats.Load(outDir, out string error) ?? throw new CampaignUsageException($"report: {error}");
        string path = Path.Combine(outDir, FileName);
        FindingFile.WriteAtomic(path, Render(outDir, stats));
        return path;
    }

    public static string Render(string outDir, CampaignStats stats)
    {
        ArgumentNullException.ThrowIfNull(stats);
        var sb = new StringBuilder(64 * 1024);
        sb.Append("<!DOCTYPE html>\n<html lang=\"en\"><head><meta charset=\"utf-8\"><title>eptfuzz campaign ").Append(E(stats.Seed)).Append("</title>\n");
        sb.Append("<style>body{font-family:system-ui,sans-serif;margin:2em;max-width:70em}pre{background:#f4f4f4;padding:.6em;overflow-x:auto}")
          .Append("table{border-collapse:collapse}td,th{border:1px solid #ccc;padding:.2em .6em;text-align:left}")
          .Append("ul.walk,ul.walk ul{list-style:none;padding-left:1.2em;border-left:1px dotted #999;margin:0}ul.walk li{font-family:monospace;white-space:pre}")
          .Append("span.differs{background:#ffd0d0}.finding{border-top:2px solid #444;margin-top:2em}.sig{font-family:monospace;font-weight:bold}svg{background:#fafafa;border:1px solid #ddd}</style></head><body>\n");
        sb.Append("<h1>eptfuzz campaign</h1>\n<table>\n");
        Row(sb, "seed", stats.Seed);
        Row(sb, "shard", stats.Shard);
        Row(sb, "generator", $"version {stats.GeneratorVersion}, cpu profile {stats.CpuProfile}, {stats.StepsPerCase} steps per case, probe weight {stats.ProbeWeight}");
        if (stats.InputProfiles.Count > 0)
        {
            Row(sb, "merged from mixed profiles", string.Join("; ", stats.InputProfiles));
        }

        Row(sb, "targets", string.Join(", ", stats.Targets));
        Row(sb, "time", TimeSpan.FromSeconds(stats.ElapsedSeconds).ToString(@"d\.hh\:mm\:ss", CultureInfo.InvariantCulture));
        Row(sb, "executions", stats.Executions.ToString(CultureInfo.InvariantCulture));
        Row(sb, "probes", stats.Probes.ToString(CultureInfo.InvariantCulture));
        Row(sb, "rules hit / rules modelled", $"{stats.RulesHit}/{stats.RulesModelled}");
        Row(sb, "feedback (--coverage)", stats.Coverage);
        Row(sb, "value classes hit", $"{stats.ClassesHit}/{stats.ClassesTotal}");
        Row(sb, "code edges reached", stats.CodeEdges == 0 ? "0 (no code coverage: the implementation was not instrumented, or --coverage left code out)" : stats.CodeEdges.ToString(CultureInfo.InvariantCulture));
        Row(sb, "coverage features", stats.Features.ToString(CultureInfo.InvariantCulture));
        Row(sb, "corpus: working set / queue", $"{stats.CorpusSize.ToString(CultureInfo.InvariantCulture)} / {stats.QueueSize.ToString(CultureInfo.InvariantCulture)} (culled entries are in queue/culled)");
        Row(sb, "findings", $"{stats.Findings.Count} distinct, {stats.Duplicates} duplicates");
        Row(sb, "rejected / infrastructure failures / hangs / known divergences", $"{stats.Rejected} ({stats.RejectedOverBudget} over the per-case budget) / {stats.InfrastructureFailures} / {stats.Hangs} / {stats.KnownDivergences}");
        sb.Append("</table>\n");

        sb.Append("<h2>Coverage over time</h2>\n");
        sb.Append(Chart(stats.History, h => h.RulesHit, "rules hit", "#1f77b4"));
        sb.Append(Chart(stats.History, h => h.ClassesHit, "value classes hit", "#ff7f0e"));
        if (stats.CodeEdges > 0)
        {
            sb.Append(Chart(stats.History, h => h.CodeEdges, "code edges", "#8c564b"));
        }

        sb.Append(Chart(stats.History, h => h.Features, "coverage features", "#2ca02c"));
        sb.Append("<h2>Executions and probes per second</h2>\n");
        sb.Append(Chart(stats.History, h => h.ExecPerSecond, "exec/s", "#d62728"));
        sb.Append(Chart(stats.History, h => h.ProbesPerSecond, "probes/s", "#9467bd"));

        sb.Append("<h2>Rules hit</h2>\n<p>").Append(E(string.Join(' ', stats.RulesHitNames))).Append("</p>\n");

        sb.Append("<h2>Value classes never hit</h2>\n");
        if (stats.ClassesNeverHit.Count == 0)
        {
            sb.Append("<p>None: every class of the written list was hit.</p>\n");
        }
        else
        {
            sb.Append("<table><tr><th>class</th></tr>\n");
            foreach (string c in stats.ClassesNeverHit)
            {
                sb.Append("<tr><td>").Append(E(c)).Append("</td></tr>\n");
            }

            sb.Append("</table>\n");
        }

        if (stats.CodeEdges > 0)
        {
            sb.Append("<h2>Implementation methods never reached</h2>\n<p>Not computed: SharpFuzz's edge index is (location XOR previous location / 2), which does not map back to a method.</p>\n");
        }

        sb.Append("<h2>Findings</h2>\n");
        if (stats.Findings.Count == 0)
        {
            sb.Append("<p>None.</p>\n");
        }

        foreach (FindingRecord f in stats.Findings)
        {
            Finding(sb, outDir, f);
        }

        sb.Append("</body></html>\n");
        return sb.ToString();
    }

    private static void Finding(StringBuilder sb, string outDir, FindingRecord f)
    {
        sb.Append("<div class=\"finding\" id=\"f").Append(E(f.Hash)).Append("\">\n<p class=\"sig\">").Append(E(f.Signature)).Append("</p>\n<p>")
          .Append(E(string.Create(CultureInfo.InvariantCulture, $"seen {f.Count} times; first after {f.FoundAtExecution} executions ({f.FoundAtSeconds:0.0} s); {f.StepsBefore} steps reduced to {f.StepsAfter} in {f.ReduceSeconds:0.00} s; {(f.Mutant ? "mutant, iteration" : "generated, case")} seed 0x{f.CaseSeed:x16}")))
          .Append("</p>\n");
        string reduced = Path.Combine(outDir, f.ReducedPath);
        if (File.Exists(reduced))
        {
            string text = File.ReadAllText(reduced);
            // The steps, without the header (the walks are drawn below).
            string steps = string.Join('\n', text.Split('\n').Where(l => !l.StartsWith('#')));
            sb.Append("<p>Reduced case (<code>").Append(E(f.ReducedPath)).Append("</code>):</p>\n<pre>").Append(E(steps.Trim())).Append("</pre>\n");
        }
        else
        {
            sb.Append("<p>The reduced case is missing (the campaign was stopped while reducing; <code>--resume</code> finishes it). Raw case: <code>").Append(E(f.RawPath)).Append("</code></p>\n");
        }

        string detailPath = Path.Combine(outDir, "findings", f.Hash + ".json");
        if (File.Exists(detailPath) && ReadDetail(detailPath) is { } detail)
        {
            sb.Append("<p>").Append(E(detail.Message)).Append("</p>\n");
            Walks(sb, detail.Sides ?? []);
            if (detail.Diagnostics is { Length: > 0 } diagnostics)
            {
                sb.Append("<pre>").Append(E(diagnostics)).Append("</pre>\n");
            }
        }

        sb.Append("</div>\n");
    }

    /// <summary>A finding's detail file; a damaged one is bad input named by its path (exit 2), never a crash.</summary>
    private static FindingDetail? ReadDetail(string path)
    {
        try
        {
            return JsonSerializer.Deserialize<FindingDetail>(File.ReadAllText(path), CampaignStats.Json);
        }
        catch (JsonException e)
        {
            throw new CampaignUsageException($"report: {path}: not a finding's detail file ({e.Message}); delete it to report the finding without its walks");
        }
    }

    /// <summary>
    /// Each side's observation and its walk as a tree: every entry read hangs under the entry that
    /// led to it. An entry that another side read differently is marked.
    /// </summary>
    private static void Walks(StringBuilder sb, IReadOnlyList<ObservationView> sides)
    {
        foreach (ObservationView side in sides)
        {
            sb.Append("<p><b>").Append(E($"{side.Target}: {side.Summary}")).Append("</b></p>\n");
            IReadOnlyList<string> entries = side.Walk;
            if (entries.Count > 0)
            {
                sb.Append("<ul class=\"walk\">");
                for (int i = 0; i < entries.Count; i++)
                {
                    bool differs = sides.Any(o => o.Walk.Count > 0 && (i >= o.Walk.Count || o.Walk[i] != entries[i]));
                    sb.Append(differs ? "<li><span class=\"differs\">" : "<li><span>").Append(E(entries[i])).Append("</span><ul>");
                }

                for (int i = 0; i < entries.Count; i++)
                {
                    sb.Append("</ul></li>");
                }

                sb.Append("</ul>\n");
            }

            if (side.Rules.Count > 0)
            {
                sb.Append("<p>").Append(E("rules fired: " + string.Join(' ', side.Rules))).Append("</p>\n");
            }
        }
    }

    /// <summary>A line chart of one history series: inline SVG, axes labelled with the extremes.</summary>
    internal static string Chart(IReadOnlyList<HistoryPoint> history, Func<HistoryPoint, double> value, string label, string colour)
    {
        const int W = 640, H = 180, L = 60, B = 24, T = 10, R = 10;
        var sb = new StringBuilder();
        sb.Append(CultureInfo.InvariantCulture, $"<svg xmlns=\"http://www.w3.org/2000/svg\" width=\"{W}\" height=\"{H}\" role=\"img\" aria-label=\"{E(label)} over time\">");
        if (history.Count == 0)
        {
            sb.Append(CultureInfo.InvariantCulture, $"<text x=\"{L}\" y=\"{H / 2}\">no status points yet</text></svg>\n");
            return sb.ToString();
        }

        double t0 = history[0].Seconds, t1 = Math.Max(history[^1].Seconds, t0 + 1e-9);
        double vmax = Math.Max(history.Max(value), 1e-9);
        sb.Append(CultureInfo.InvariantCulture, $"<line x1=\"{L}\" y1=\"{H - B}\" x2=\"{W - R}\" y2=\"{H - B}\" stroke=\"#444\"/><line x1=\"{L}\" y1=\"{T}\" x2=\"{L}\" y2=\"{H - B}\" stroke=\"#444\"/>");
        sb.Append("<polyline fill=\"none\" stroke=\"").Append(colour).Append("\" stroke-width=\"2\" points=\"");
        foreach (HistoryPoint p in history)
        {
            double x = L + ((p.Seconds - t0) / (t1 - t0) * (W - L - R));
            double y = H - B - (value(p) / vmax * (H - B - T));
            sb.Append(CultureInfo.InvariantCulture, $"{x:0.0},{y:0.0} ");
        }

        sb.Append("\"/>");
        sb.Append(CultureInfo.InvariantCulture, $"<text x=\"4\" y=\"{T + 10}\" font-size=\"11\">{vmax:0.#}</text><text x=\"4\" y=\"{H - B}\" font-size=\"11\">0</text>");
        sb.Append(CultureInfo.InvariantCulture, $"<text x=\"{L}\" y=\"{H - 6}\" font-size=\"11\">{t0:0} s</text><text x=\"{W - R - 60}\" y=\"{H - 6}\" font-size=\"11\">{t1:0} s</text>");
        sb.Append(CultureInfo.InvariantCulture, $"<text x=\"{L + 10}\" y=\"{T + 12}\" font-size=\"12\" fill=\"{colour}\">{E(label)}</text></svg>\n");
        return sb.ToString();
    }

    private static void Row(StringBuilder sb, string name, string value) =>
        sb.Append("<tr><th>").Append(E(name)).Append("</th><td>").Append(E(value)).Append("</td></tr>\n");

    private static string E(string text) => WebUtility.HtmlEncode(text);
}
