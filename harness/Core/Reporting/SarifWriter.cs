using System.Text.Json;
using System.Text.Json.Nodes;
using EptFuzz.Harness.Running;

namespace EptFuzz.Harness.Reporting;

/// <summary>
/// SARIF 2.1.0: one result per case that did not pass, located at the step's line, so code hosts
/// annotate the .ept file. Known divergences are notes; failures are errors.
/// </summary>
public static class SarifWriter
{
    public static string Write(GateReport report)
    {
        var rules = new JsonArray(
            Rule("divergence", "Targets disagree on an observation"),
            Rule("expectation", "A step's expectation did not hold"),
            Rule("bad-input", "The case file is malformed"),
            Rule("infrastructure", "A target could not run"),
            Rule("timeout", "The case ran past its time budget"),
            Rule("known-divergence", "A documented, triaged divergence"),
            Rule("unsupported", "The case needs an operation the target does not implement"));
        var results = new JsonArray();
        foreach (var r in report.Results.Where(r => r.Status != CaseStatus.Passed))
        {
            var (ruleId, level) = r.Status switch
            {
                CaseStatus.Diverged => ("divergence", "error"),
                CaseStatus.ExpectationFailed => ("expectation", "error"),
                CaseStatus.BadInput => ("bad-input", "error"),
                CaseStatus.InfrastructureFailure => ("infrastructure", "error"),
                CaseStatus.Timeout => ("timeout", "error"),
                CaseStatus.Unsupported => ("unsupported", "note"),
                _ => ("known-divergence", "note"),
            };
            var region = new JsonObject { ["startLine"] = Math.Max(1, r.Line) };
            if (r.Column > 0)
            {
                region["startColumn"] = r.Column;
            }

            var result = new JsonObject
            {
                ["ruleId"] = ruleId,
                ["level"] = level,
                ["message"] = new JsonObject { ["text"] = r.Message + (r.KnownReason is null ? string.Empty : $" (known: {r.KnownReason})") },
                ["locations"] = new JsonArray(new JsonObject
                {
                    ["physicalLocation"] = new JsonObject
                    {
                        ["artifactLocation"] = new JsonObject { ["uri"] = r.File.Replace('\\', '/') },
                        ["region"] = region,
                    },
                }),
            };
            if (r.Signature is not null)
            {
                result["partialFingerprints"] = new JsonObject { ["eptfuzzSignature/v1"] = r.Signature };
            }

            results.Add(result);
        }

        var sarif = new JsonObject
        {
            ["$schema"] = "https://json.schemastore.org/sarif-2.1.0.json",
            ["version"] = "2.1.0",
            ["runs"] = new JsonArray(new JsonObject
            {
                ["tool"] = new JsonObject
                {
                    ["driver"] = new JsonObject
                    {
                        ["name"] = report.Tool,
                        ["version"] = report.Version,
                        ["informationUri"] = "https://example.invalid/eptfuzz",
                        ["rules"] = rules,
                    },
                },
                ["results"] = results,
            }),
        };
        return sarif.ToJsonString(new JsonSerializerOptions { WriteIndented = true });
    }

    private static JsonObject Rule(string id, string text) =>
        new() { ["id"] = id, ["shortDescription"] = new JsonObject { ["text"] = text } };
}
