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

        var execution = new CaseExecution(@case, options);
        CaseResult result;
        try
        {
            result = execution.Run();
        }
        catch (TargetFaultException e)
        {
            // The code under test crashed, hung or broke the protocol at this step: a finding.
            var step = e.StepIndex is int at && at < @case.Steps.Length ? @case.Steps[at] : execution.CurrentStep;
            int stepIndex = e.StepIndex ?? execution.CurrentIndex;
            string stepKey = step is null ? "case" : CaseExecution.StepKey(step);
            var signature = new Comparing.DivergenceSignature(stepKey, e.Target, e.OutcomeText, "-", "-", e.Detail).ToString();
            var known = options.Known.ReasonFor(signature);
            result = new CaseResult
            {
                File = @case.SourceName,
                Status = known is null ? CaseStatus.Diverged : CaseStatus.KnownDivergence,
                Message = step is null ? e.Message : $"step {stepIndex + 1} (line {step.Line}): {e.Message}",
                Line = step?.Line ?? 0,
                Signature = signature,
                KnownReason = known,
                Detail = $"signature: {signature}\n{(string.IsNullOrEmpty(e.Log) ? string.Empty : "target stderr (tail):\n" + e.Log)}replay: {options.ReplayCommand(@case.SourceName)}\n",
                Counters = execution.Counters,
            };
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
