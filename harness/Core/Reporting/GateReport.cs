using EptFuzz.Harness.Running;

namespace EptFuzz.Harness.Reporting;

/// <summary>Everything a report file needs: the results of one replay/gate run.</summary>
public sealed record GateReport(string Tool, string Version, IReadOnlyList<string> Targets, IReadOnlyList<CaseResult> Results, TimeSpan Duration)
{
    public int Count(CaseStatus status) => Results.Count(r => r.Status == status);

    public int ExitCode => ExitCodes.For(Results);
}
