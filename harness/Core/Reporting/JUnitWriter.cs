using System.Globalization;
using System.Xml.Linq;
using EptFuzz.Harness.Running;

namespace EptFuzz.Harness.Reporting;

/// <summary>
/// JUnit XML: one testsuite for the cases that count and a separate one for known divergences,
/// so they are listed (never hidden) but do not fail the build.
/// </summary>
public static class JUnitWriter
{
    public static string Write(GateReport report)
    {
        var counted = report.Results.Where(r => r.Status != CaseStatus.KnownDivergence).ToList();
        var known = report.Results.Where(r => r.Status == CaseStatus.KnownDivergence).ToList();
        var root = new XElement("testsuites",
            new XAttribute("name", report.Tool),
            new XAttribute("tests", report.Results.Count),
            new XAttribute("failures", report.Results.Count(r => r.Status is CaseStatus.Diverged or CaseStatus.ExpectationFailed)),
            new XAttribute("errors", report.Results.Count(r => r.Status is CaseStatus.BadInput or CaseStatus.InfrastructureFailure or CaseStatus.Timeout)),
            new XAttribute("time", Seconds(report.Duration)),
            Suite($"{report.Tool} gate ({string.Join(",", report.Targets)})", counted),
            Suite($"{report.Tool} known divergences", known));
        return new XDocument(new XDeclaration("1.0", "utf-8", null), root).Declaration + Environment.NewLine + root;
    }

    private static XElement Suite(string name, List<CaseResult> results) =>
        new("testsuite",
            new XAttribute("name", name),
            new XAttribute("tests", results.Count),
            new XAttribute("failures", results.Count(r => r.Status is CaseStatus.Diverged or CaseStatus.ExpectationFailed)),
            new XAttribute("errors", results.Count(r => r.Status is CaseStatus.BadInput or CaseStatus.InfrastructureFailure or CaseStatus.Timeout)),
            new XAttribute("skipped", results.Count(r => r.Status == CaseStatus.Unsupported)),
            new XAttribute("time", Seconds(TimeSpan.FromTicks(results.Sum(r => r.Duration.Ticks)))),
            results.Select(Case));

    private static XElement Case(CaseResult r)
    {
        var element = new XElement("testcase",
            new XAttribute("classname", ClassName(r.File)),
            new XAttribute("name", Path.GetFileName(r.File)),
            new XAttribute("file", r.File),
            new XAttribute("time", Seconds(r.Duration)));
        if (r.Line > 0)
        {
            element.Add(new XAttribute("line", r.Line));
        }

        switch (r.Status)
        {
            case CaseStatus.Diverged:
            case CaseStatus.ExpectationFailed:
                element.Add(new XElement("failure", new XAttribute("message", r.Message), new XAttribute("type", r.Status.ToString()), r.Detail));
                break;
            case CaseStatus.BadInput:
            case CaseStatus.InfrastructureFailure:
            case CaseStatus.Timeout:
                element.Add(new XElement("error", new XAttribute("message", r.Message), new XAttribute("type", r.Status.ToString()), r.Detail));
                break;
            case CaseStatus.Unsupported:
                element.Add(new XElement("skipped", new XAttribute("message", r.Message)));
                break;
            case CaseStatus.KnownDivergence:
                element.Add(new XElement("system-out", $"known divergence {r.Signature}: {r.KnownReason}{Environment.NewLine}{r.Detail}"));
                break;
        }

        return element;
    }

    private static string ClassName(string file)
    {
        var dir = Path.GetDirectoryName(file) ?? string.Empty;
        return dir.Replace('/', '.').Replace('\\', '.').Trim('.') is { Length: > 0 } d ? d : "cases";
    }

    private static string Seconds(TimeSpan t) => t.TotalSeconds.ToString("0.###", CultureInfo.InvariantCulture);
}
