using System.Text;
using EptFuzz.Contract;
using EptFuzz.Harness.Cases;
using EptFuzz.Harness.Comparing;
using EptFuzz.Harness.Reporting;

namespace EptFuzz.Harness.Running;

/// <summary>Where a batch target parted from the baseline.</summary>
internal abstract record BatchFinding(int StepIndex);

internal sealed record BatchDivergence(int StepIndex, int Baseline, Observation BaselineObservation, int Other, Observation OtherObservation, Difference Difference)
    : BatchFinding(StepIndex);

internal sealed record BatchExpectationFailure(int StepIndex, int Target, string Why) : BatchFinding(StepIndex);

/// <summary>
/// Targets that answer only at the end of the case (the VMX oracle): the probes' baseline
/// observations are kept for them and compared once they finished, and their answers are asked
/// for early when an immediate divergence needs them for triage.
/// </summary>
internal sealed class BatchTargets(EptCase @case, IReadOnlyList<ITarget> targets, ITargetSession[] sessions, RunScratch scratch, TextWriter? trace)
{
    /// <summary>Every immediate target's observation of each probe, by step index, for triage.</summary>
    private readonly Dictionary<int, Observation?[]> probeObservations = scratch.ProbeObservations;
    /// <summary>Baseline observations of probes, compared after the case.</summary>
    private readonly List<(int Step, Observation Baseline, bool Stale)> probes = scratch.Probes;
    /// <summary>Batch targets' answers once they finished (by target index).</summary>
    private readonly Dictionary<int, IReadOnlyDictionary<int, Observation>> answers = [];

    private bool? any;

    /// <summary>A target answers only at the end of the case (asked first while the case runs: a target may fail to say).</summary>
    public bool Any => any ??= targets.Any(t => !t.Traits.HasFlag(TargetTraits.Immediate));

    public bool Finished => answers.Count > 0;

    /// <summary>A probe no immediate target answered: only batch targets can.</summary>
    public void Unanswered(int stepIndex) => probes.Add((stepIndex, Observation.Unsupported("no immediate target"), false));

    /// <summary>Keeps a probe's immediate observations for the batch targets to be compared with.</summary>
    public void Keep(int stepIndex, Observation?[] observations, Observation baseline, bool stale)
    {
        probeObservations[stepIndex] = observations;
        probes.Add((stepIndex, baseline, stale));
    }

    /// <summary>Finishes every batch target and compares its answers; the first difference, or null.</summary>
    public BatchFinding? FinishAndCompare(CpuCapabilities cpu, VmxControls controls, ref int compared, ref int unsupported)
    {
        int baselineIndex = -1;
        for (int i = 0; i < targets.Count; i++)
        {
            if (targets[i].Traits.HasFlag(TargetTraits.Immediate))
            {
                baselineIndex = i;
                break;
            }
        }

        for (int t = 0; t < sessions.Length; t++)
        {
            if (targets[t].Traits.HasFlag(TargetTraits.Immediate))
            {
                continue;
            }

            var batch = sessions[t].Finish();
            answers[t] = batch;
            if (trace is not null)
            {
                Trace(t, batch);
            }

            bool desynchronized = false;
            foreach (var (stepIndex, baseline, stale) in probes)
            {
                var step = @case.Steps[stepIndex];
                if (!batch.TryGetValue(stepIndex, out var other) || other.Kind == OutcomeKind.Unsupported)
                {
                    unsupported++;
                    continue;
                }

                if (desynchronized || baselineIndex < 0 || baseline.Kind == OutcomeKind.Unsupported)
                {
                    continue;
                }

                var diff = ObservationComparer.Compare(baseline, targets[baselineIndex].Traits, other, targets[t].Traits);
                if (stale)
                {
                    // As for immediate targets: a stale-allowed access whose answers differ may leave
                    // different A/D state behind, so nothing after it is compared for this target.
                    desynchronized |= diff != Difference.None;
                    continue;
                }

                compared++;
                if (diff != Difference.None)
                {
                    return new BatchDivergence(stepIndex, baselineIndex, baseline, t, other, diff);
                }

                if (step.Expectation is { } expectation && ExpectationCheck.Check(expectation, other, targets[t].Traits, cpu, controls) is { } why)
                {
                    return new BatchExpectationFailure(stepIndex, t, why);
                }
            }
        }

        return null;
    }

    /// <summary>
    /// A divergence among the immediate targets stopped the case before the batch targets
    /// answered: ask them now, so the report can say who is out of step. A batch target that
    /// cannot answer is said to have failed, not hidden; the finding stands on its own.
    /// </summary>
    public void FinishForTriage(int stepIndex)
    {
        for (int t = 0; t < sessions.Length; t++)
        {
            if (targets[t].Traits.HasFlag(TargetTraits.Immediate))
            {
                continue;
            }

            try
            {
                answers[t] = sessions[t].Finish();
            }
            catch (Exception e) when (e is TargetFailureException or TargetFaultException)
            {
                trace?.WriteLine($"  {targets[t].Name} could not answer for triage: {e.Message}");
                answers[t] = new Dictionary<int, Observation> { [stepIndex] = Observation.Unsupported($"failed: {e.Message}") };
            }
        }
    }

    /// <summary>Every target's observation of one probe: the immediate ones and, once finished, the batch ones.</summary>
    public Observation?[] AllObservations(int stepIndex, Observation?[]? immediate)
    {
        var all = probeObservations.TryGetValue(stepIndex, out var kept) ? (Observation?[])kept.Clone()
            : immediate is not null ? (Observation?[])immediate.Clone()
            : new Observation?[sessions.Length];
        foreach (var (t, batch) in answers)
        {
            if (batch.TryGetValue(stepIndex, out var o))
            {
                all[t] = o;
            }
        }

        return all;
    }

    private void Trace(int t, IReadOnlyDictionary<int, Observation> batch)
    {
        var sb = new StringBuilder();
        sb.Append($"{targets[t].Name} answered at the end of the case{(sessions[t].UnsupportedReason is { } why ? $" (unsupported: {why})" : string.Empty)}:\n");
        foreach (var (stepIndex, _, _) in probes)
        {
            sb.Append($"  step {stepIndex + 1} (line {@case.Steps[stepIndex].Line}): ");
            if (batch.TryGetValue(stepIndex, out var answer))
            {
                CaseReport.AppendObservation(sb, new TargetObservation(targets[t].Name, answer, targets[t].RuleNames), string.Empty);
            }
            else
            {
                sb.Append("no answer\n");
            }
        }

        trace!.Write(sb.ToString());
    }
}
