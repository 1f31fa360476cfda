using System.Text.Json;
using System.Text.Json.Nodes;

namespace EptFuzz.Harness.Reporting;

/// <summary>The tool's own machine-readable report: summary counts plus every case result.</summary>
public static class JsonReportWriter
{
    public static string Write(GateReport report)
    {
        var summary = new JsonObject();
        foreach (var status in Enum.GetValues<Running.CaseStatus>())
        {
            summary[status.ToString()] = report.Count(status);
        }

        var cases = new JsonArray();
        foreach (var r in report.Results)
        {
            cases.Add(new JsonObject
            {
                ["file"] = r.File,
                ["status"] = r.Status.ToString(),
                ["message"] = r.Message,
                ["line"] = r.Line,
                ["signature"] = r.Signature,
                ["known"] = r.KnownReason,
                ["seconds"] = Math.Round(r.Duration.TotalSeconds, 4),
                ["steps"] = r.Counters.Steps,
                ["probes"] = r.Counters.Probes,
                ["compared"] = r.Counters.Compared,
                ["staleAllowed"] = r.Counters.StaleAllowed,
                ["unsupported"] = r.Counters.Unsupported,
                ["expectations"] = r.Counters.Expectations,
            });
        }

        var root = new JsonObject
        {
            ["tool"] = report.Tool,
            ["version"] = report.Version,
            ["targets"] = new JsonArray(report.Targets.Select(t => (JsonNode?)t).ToArray()),
            ["exitCode"] = report.ExitCode,
            ["seconds"] = Math.Round(report.Duration.TotalSeconds, 3),
            ["summary"] = summary,
            ["cases"] = cases,
        };
        return root.ToJsonString(new JsonSerializerOptions { WriteIndented = true });
    }
}
