using System.Diagnostics;
using EptFuzz.Contract;
using EptFuzz.Harness.Cases;

namespace EptFuzz.Harness.Running;

/// <summary>
/// Replays one case: the hypervisor builds the tables, every translator sees the same bytes, and
/// every probe is compared (and checked against its expectation and the intent). The first
/// divergence stops the case.
/// </summary>
public static class CaseRunner
{
    public static CaseResult Run(EptCase @case, RunOptions options)
    {
        var clock = Stopwatch.StartNew();
        var execution = new CaseExecution(@case, options);
        CaseResult result;
        try
        {
            result = execution.Run();
        }
        catch (TargetFailureException e)
        {
            // Infrastructure, never a finding.
            result = new CaseResult
            {
                File = @case.SourceName,
                Status = CaseStatus.InfrastructureFailure,
                Message = e.Message,
                Detail = e.ToString(),
                Counters = execution.Counters,
            };
        }
        finally
        {
            execution.Dispose();
        }

        return result with { Duration = clock.Elapsed };
    }
}
