using System.Diagnostics;
using EptFuzz.Contract;
using EptFuzz.Harness.Cases;

namespace EptFuzz.Harness.Running;

/// <summary>
/// Replays one case: the hypervisor builds the tables, every translator sees the same bytes, and
/// every probe is compared (and checked against its expectation, the intent and the invariants).
/// The first divergence stops the case. This is the one verdict path: replay, gate, fuzz and
/// reduce all run cases here, so a case gets the same verdict from each, and a finding's own
/// "replay:" line reproduces it.
/// </summary>
public static class CaseRunner
{
    public static CaseResult Run(EptCase @case, RunOptions options)
    {
        ArgumentNullException.ThrowIfNull(@case);
        ArgumentNullException.ThrowIfNull(options);
        var clock = Stopwatch.StartNew();
        if (CaseFeatures.FirstUnsupported(@case, options.Features) is var (index, missing))
        {
            var step = @case.Steps[index];
            return new CaseResult
            {
                File = @case.SourceName,
                Status = CaseStatus.Unsupported,
                Message = $"unsupported: step {index + 1} (line {step.Line}) needs {CaseFeatures.Describe(missing)}, which the target does not implement",
                Line = step.Line,
                Duration = clock.Elapsed,
            };
        }

        CaseExecution? execution = null;
        CaseResult result;
        try
        {
            execution = new CaseExecution(@case, options);
            result = execution.Run();
        }
        catch (TargetFailureException e)
        {
            // Infrastructure, never a finding (also when a target cannot even say what it is).
            result = new CaseResult
            {
                File = @case.SourceName,
                Status = CaseStatus.InfrastructureFailure,
                Message = e.Message,
                Diagnostics = e.ToString(),
                Counters = execution?.Counters ?? new CaseCounters(),
            };
        }
        catch (TargetFaultException e) when (execution is not null)
        {
            // Code under test crashed, hung or broke the protocol on this input: a finding.
            result = execution.Faulted(e);
        }
        catch (Exception e) when (execution is not null && e is not (OutOfMemoryException or InsufficientExecutionStackException))
        {
            // The hypervisor or a target threw: it crashed on this input, a finding with its stack.
            result = execution.Crashed(e);
        }
        finally
        {
            execution?.Dispose();
        }

        return result with { Duration = clock.Elapsed };
    }
}
