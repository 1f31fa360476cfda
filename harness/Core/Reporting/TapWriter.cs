using System.Text;
using EptFuzz.Harness.Running;

namespace EptFuzz.Harness.Reporting;

/// <summary>TAP version 13, with YAML diagnostics for every case that did not simply pass.</summary>
public static class TapWriter
{
    public static string Write(GateReport report)
    {
        var sb = new StringBuilder();
        sb.Append("TAP version 13\n");
        sb.Append("1..").Append(report.Results.Count).Append('\n');
        for (int i = 0; i < report.Results.Count; i++)
        {
            var r = report.Results[i];
            bool ok = !r.IsFailure;
            sb.Append(ok ? "ok " : "not ok ").Append(i + 1).Append(" - ").Append(r.File);
            if (r.Status == CaseStatus.KnownDivergence)
            {
                sb.Append(" (known divergence)");
            }
            else if (r.Status == CaseStatus.Unsupported)
            {
                sb.Append(" # SKIP ").Append(r.Message.ReplaceLineEndings(" "));
            }

            sb.Append('\n');
            if (r.Status != CaseStatus.Passed)
            {
                sb.Append("  ---\n");
                sb.Append("  status: ").Append(r.Status).Append('\n');
                sb.Append("  message: ").Append(Yaml(r.Message)).Append('\n');
                if (r.Line > 0)
                {
                    sb.Append("  line: ").Append(r.Line).Append('\n');
                }

                if (r.Signature is not null)
                {
                    sb.Append("  signature: ").Append(Yaml(r.Signature)).Append('\n');
                }

                if (r.KnownReason is not null)
                {
                    sb.Append("  known: ").Append(Yaml(r.KnownReason)).Append('\n');
                }

                sb.Append("  ...\n");
            }
        }

        return sb.ToString();
    }

    private static string Yaml(string text) => "\"" + text.Replace("\\", "\\\\", StringComparison.Ordinal).Replace("\"", "\\\"", StringComparison.Ordinal).Replace("\n", "\\n", StringComparison.Ordinal) + "\"";
}
