using System.Diagnostics;
using System.Text;
using EptFuzz.Contract;
using EptFuzz.Harness.Cases;
using EptFuzz.Harness.Comparing;
using EptFuzz.Harness.Intent;
using EptFuzz.Harness.Reporting;

namespace EptFuzz.Harness.Running;

/// <summary>
/// One case while it runs: the step loop, the comparison of each probe and the verdict. The
/// concerns it composes live beside it: step dispatch (<see cref="OperationDispatch"/>), effect
/// forwarding (<see cref="EffectForwarder"/>), the stale-translation policy
/// (<see cref="StaleTranslations"/>), batch targets (<see cref="BatchTargets"/>), intent and
/// expectation checks, invariants (<see cref="IOperationInvariant"/>), triage
/// (<see cref="Comparing.Triage"/>) and pooling (<see cref="RunScratch"/>).
/// </summary>
internal sealed class CaseExecution : IDisposable
{
    private readonly EptCase @case;
    private readonly RunOptions options;
    private readonly CpuCapabilities cpu;
    private readonly IEptHypervisor hypervisor;
    private readonly ITarget[] targets;
    private readonly ITargetSession[] sessions;
    private readonly IntentModel intent;

    /// <summary>Guest paging as the case's successful <c>guest</c> steps left it (what a <c>gmap</c>'s result depends on).</summary>
    private bool guestPagingOn;
    private readonly RunScratch scratch;
    private readonly StaleTranslations stale;
    private readonly EffectForwarder forwarder;
    private readonly BatchTargets batch;
    private bool disposed;

    private int compared;
    private int staleAllowed;
    private int unsupported;
    private int expectations;
    private int probeCount;
    /// <summary>Index of the step being run (steps can be equal records, so never search for one).</summary>
    private int currentIndex;
    /// <summary>Who is being called now (the hypervisor or a target): an exception it throws is its crash.</summary>
    private readonly Blame blame;
    /// <summary>A raw write changed a table page: from here on the linkage is the case's doing, not the hypervisor's.</summary>
    private bool tablesRawWritten;

    public CaseExecution(EptCase @case, RunOptions options)
    {
        this.@case = @case;
        this.options = options;
        cpu = @case.Steps.Length > 0 && @case.Steps[0] is CpuStep c ? c.ToCapabilities() : CpuCapabilities.Default;
        scratch = RunScratch.Rent();
        hypervisor = options.Hypervisor();
        targets = [.. options.Targets];
        blame = new Blame(hypervisor, targets);
        sessions = new ITargetSession[targets.Length];
        intent = new IntentModel(cpu);
        stale = new StaleTranslations(scratch.StaleEntries, scratch.RootsSinceGlobalInvept);
        forwarder = new EffectForwarder(hypervisor, sessions, intent, stale, scratch, blame);
        batch = new BatchTargets(@case, targets, sessions, scratch, options.Trace);
    }

    public CaseCounters Counters => new()
    {
        Steps = @case.Steps.Length,
        Probes = probeCount,
        Compared = compared,
        StaleAllowed = staleAllowed,
        Unsupported = unsupported,
        Expectations = expectations,
    };

    private VmxControls Controls => hypervisor.Controls;

    private Step? CurrentStep => currentIndex < @case.Steps.Length ? @case.Steps[currentIndex] : null;

    public void Dispose()
    {
        // The scratch goes back once: a second call must not clear it under the next case.
        if (disposed)
        {
            return;
        }

        disposed = true;
        foreach (var s in sessions)
        {
            s?.Dispose();
        }

        // A hypervisor that holds resources (the implementation recycles its memory pages) gets them back.
        (hypervisor as IDisposable)?.Dispose();
        scratch.Return();
    }

    public CaseResult Run()
    {
        for (int t = 0; t < targets.Length; t++)
        {
            blame.Target(t);
            sessions[t] = targets[t].Open(cpu);
        }

        foreach (var invariant in options.Invariants)
        {
            invariant.BeginCase();
        }

        blame.Hypervisor();
        if (hypervisor is ILookAheadHypervisor ahead)
        {
            ahead.Plan(Plan());
        }

        var configured = hypervisor.Configure(cpu);
        if (configured != ApiResult.Ok)
        {
            return Refused(Array.FindIndex(@case.Steps.AsSpan().ToArray(), s => s is CpuStep), $"cpu: the hypervisor refused the processor ({configured})");
        }

        for (int i = 0; i < @case.Steps.Length; i++)
        {
            var step = @case.Steps[i];
            currentIndex = i;
            if (options.Trace is not null)
            {
                Trace($"step {i + 1} (line {step.Line}): {CasePrinter.PrintStep(step)}");
            }

            var stop = step.Category switch
            {
                StepCategory.Operation => Operation(i, step),
                _ => Probe(i, step),
            };
            if (stop is not null)
            {
                return stop;
            }
        }

        return FinishBatchTargets() ?? new CaseResult { File = @case.SourceName, Status = CaseStatus.Passed, Counters = Counters };
    }

    /// <summary>The case's steps as a hypervisor that looks ahead sees them: the calls and probes the loop below will make, in order.</summary>
    private List<PlannedStep> Plan()
    {
        var plan = new List<PlannedStep>(@case.Steps.Length);
        for (int i = 0; i < @case.Steps.Length; i++)
        {
            var step = @case.Steps[i];
            if (step.Category == StepCategory.Operation)
            {
                if (OperationDispatch.CallOf(step) is { } call)
                {
                    plan.Add(new PlannedStep(i, call, null));
                }
            }
            else
            {
                plan.Add(new PlannedStep(i, null, ProbeOf(i, step)));
            }
        }

        return plan;
    }

    private static Probe ProbeOf(int index, Step step) => step switch
    {
        AccessStep a => Contract.Probe.ForAccess(index, a.ToAccess()),
        EntryStep e => Contract.Probe.ForEntry(index, e.Gpa, e.Level),
        _ => Contract.Probe.ForVmEntry(index),
    };

    private CaseResult? Operation(int index, Step step)
    {
        if (step is CpuStep)
        {
            return null;
        }

        // Once a raw write made everything unknown, the intent's answer for a mapping operation
        // would be discarded (below) and its state is never consulted again: skip the work (a split
        // of a 1 GiB page into 4 KiB pages changes 512 tables). A trace still shows it.
        bool consultIntent = !intent.AllUnknown || options.Trace is not null;
        blame.Hypervisor();
        if (OperationDispatch.Apply(hypervisor, intent, step, consultIntent) is not { } outcome)
        {
            return Refused(currentIndex, $"step {step.Verb} is not an operation");
        }

        var (result, intended, raw, tables) = outcome;
        if (options.Trace is not null)
        {
            Trace($"  hypervisor: {result}{(intended is { } ir && options.CheckIntent ? $"   intent: {ir}" : string.Empty)}");
        }

        if (result == ApiResult.ResourceLimit)
        {
            return Refused(currentIndex, step is GMapStep
                ? $"{step.Verb}: the guest paging step's tables= range has no page left for another guest page table; refused"
                : $"{step.Verb}: the case asks for more table pages than the hypervisor's pool allows; refused");
        }

        forwarder.Forward(raw, tables);
        if (result == ApiResult.Ok)
        {
            ForwardState(step);
        }

        blame.Hypervisor();
        options.Observer?.OnOperation(index, step, result);
        if (CheckInvariants(step, result) is { } broken)
        {
            return broken;
        }

        if (intended is not null && IntentModel.RangeOf(step) is var (from, to) && !intent.IsKnownRange(from, to))
        {
            // A raw write touched this range: the intent cannot say what the operation should do,
            // and after it cannot say what maps there.
            intended = null;
            intent.MarkUnknown(from, to);
        }

        if (options.CheckIntent && step is GMapStep or GuestStep && (options.Features & HypervisorFeatures.GuestPaging) != 0 && GuestIntent.Check(step, result, guestPagingOn, cpu.MaxPhyAddr) is { } guestWant)
        {
            var signature = new DivergenceSignature(step.Verb, hypervisor.Name, result.ToString(), "intent", guestWant, "result");
            return Diverged(step, signature, $"{step.Verb}: {hypervisor.Name} says {result}, its arguments mean {guestWant}", null, null);
        }

        if (step is GuestStep gs && result == ApiResult.Ok)
        {
            guestPagingOn = gs.Paging;
        }

        if (options.CheckIntent && intended is { } want && want != result)
        {
            var signature = new DivergenceSignature(step.Verb, hypervisor.Name, result.ToString(), "intent", want.ToString(), "result");
            return Diverged(step, signature, $"{step.Verb}: {hypervisor.Name} says {result}, the operations so far mean {want}", null, null);
        }

        if (step.Expectation is { } expectation)
        {
            expectations++;
            if (expectation is not ResultExpectation expected)
            {
                return Refused(currentIndex, $"{step.Verb} is an operation: its expectation must be ok or an error name");
            }

            if (expected.Result != result)
            {
                return Fail(CaseStatus.ExpectationFailed, step.Line, $"{step.Verb}: expected {expected.Result}, {hypervisor.Name} says {result}", step);
            }
        }

        return null;
    }

    /// <summary>A new EPTP, controls or guest paging state goes to every translator.</summary>
    private void ForwardState(Step step)
    {
        switch (step)
        {
            case EptpStep:
                ulong root = hypervisor.Eptp & EptAddress.Mask;
                forwarder.AddTablePage(root);
                stale.OnRoot(root);
                for (int t = 0; t < sessions.Length; t++)
                {
                    blame.Target(t);
                    sessions[t].SetEptp(hypervisor.Eptp);
                }

                break;
            case ControlsStep:
                for (int t = 0; t < sessions.Length; t++)
                {
                    blame.Target(t);
                    sessions[t].SetControls(hypervisor.Controls);
                }

                break;
            case GuestStep:
                for (int t = 0; t < sessions.Length; t++)
                {
                    blame.Target(t);
                    sessions[t].SetGuestPaging(hypervisor.GuestPaging);
                }

                break;
        }
    }

    private CaseResult? CheckInvariants(Step step, ApiResult result)
    {
        if (options.Invariants.Count == 0)
        {
            return null;
        }

        if (!tablesRawWritten && result == ApiResult.Ok)
        {
            // An edit always rewrites an entry of the hypervisor's own tables; a poke does when it
            // lands in a page the hypervisor holds as a table (maybe one no operation wrote yet).
            tablesRawWritten = step is EditStep || forwarder.TablesRawWritten || (step is PokeStep poke && HoldsTablePage(poke.Hpa));
        }

        var context = new OperationContext(hypervisor, step, result, forwarder.PagesWritten, tablesRawWritten);
        foreach (var invariant in options.Invariants)
        {
            if (invariant.Check(context) is { } violation)
            {
                var signature = DivergenceSignature.Fault(StepKey(step), hypervisor.Name, violation.Kind, violation.Detail);
                return Diverged(step, signature, $"{step.Verb}: {hypervisor.Name}: {violation.Message}", null, null) with { Diagnostics = violation.Message };
            }
        }

        return null;
    }

    private bool HoldsTablePage(Hpa address)
    {
        var held = new List<Hpa>();
        return hypervisor.ReportTablePages(held, []) && held.Contains(new Hpa(address.Value & EptAddress.Mask));
    }

    private CaseResult? Probe(int index, Step step)
    {
        probeCount++;
        Probe probe = ProbeOf(index, step);

        var observations = new Observation?[sessions.Length];
        for (int t = 0; t < sessions.Length; t++)
        {
            blame.Target(t);
            observations[t] = sessions[t].Submit(probe);
        }

        int baselineIndex = Array.FindIndex(observations, o => o is not null && o.Kind != OutcomeKind.Unsupported);
        foreach (var o in observations)
        {
            if (o is { Kind: OutcomeKind.Unsupported })
            {
                unsupported++;
            }
        }

        if (options.Trace is not null)
        {
            TraceProbe(observations);
        }

        if (baselineIndex < 0)
        {
            // No immediate target answered: only batch targets can (or none, and nothing is compared).
            batch.Unanswered(index);
            return null;
        }

        var baseline = observations[baselineIndex]!;
        bool isStale = stale.Desynchronized || (stale.Any && stale.Touches(observations, targets));
        if (batch.Any)
        {
            // Only the batch targets' answers, compared after the case, look back at these.
            batch.Keep(index, observations, baseline, isStale);
        }

        if (isStale)
        {
            // Spec: a processor may keep using translations cached before a raw write until INVEPT.
            staleAllowed++;
            if (stale.Desynchronized)
            {
                Trace("  stale-allowed: an earlier stale-allowed access left the translators' A/D state different");
                return null;
            }

            Trace("  stale-allowed: the walk touches an entry a raw write changed since the last invept");
            if (!AllAgree(observations, baselineIndex))
            {
                // A/D flags are sticky: once a stale translation made one translator set (or skip)
                // flags another did not, later walks may legitimately differ. Compare no more.
                stale.Desynchronized = true;
                return null;
            }

            forwarder.CommitWrites(baseline);
            return null;
        }

        options.Observer?.OnProbe(index, step, baseline);
        for (int t = 0; t < sessions.Length; t++)
        {
            if (t == baselineIndex || observations[t] is not { } other || other.Kind == OutcomeKind.Unsupported)
            {
                continue;
            }

            compared++;
            var diff = ObservationComparer.Compare(baseline, targets[baselineIndex].Traits, other, targets[t].Traits);
            if (diff != Difference.None)
            {
                return Divergence(step, baselineIndex, baseline, t, other, diff, observations);
            }
        }

        if (options.CheckIntent && step is AccessStep access)
        {
            var pagingOn = hypervisor.GuestPaging.Enabled;
            if (IntentCheck.Check(intent, access.ToAccess(), pagingOn, baseline, Controls) is { } mismatch)
            {
                var signature = new DivergenceSignature(StepKey(step), targets[baselineIndex].Name, baseline.Kind.Text(), "intent", "expected", mismatch.Field);
                return Diverged(step, signature, $"{StepKey(step)}: {targets[baselineIndex].Name} says {Describe.Observation(baseline)}, the operations so far mean {mismatch.Expected}", observations, null);
            }
        }

        if (step.Expectation is { } expectation)
        {
            expectations++;
            for (int t = 0; t < sessions.Length; t++)
            {
                if (observations[t] is { Kind: not OutcomeKind.Unsupported } o
                    && ExpectationCheck.Check(expectation, o, targets[t].Traits, cpu, Controls) is { } why)
                {
                    return Fail(CaseStatus.ExpectationFailed, step.Line, $"{StepKey(step)}: {targets[t].Name}: {why}", step) with { Observations = Answers(observations) };
                }
            }
        }

        forwarder.CommitWrites(baseline);
        return null;
    }

    /// <summary>
    /// Did every translator leave the same A/D state behind? Writes are compared where both report
    /// them; a target that does not report its writes agrees only if its whole observation does.
    /// </summary>
    private bool AllAgree(Observation?[] observations, int baselineIndex)
    {
        var baseline = observations[baselineIndex]!;
        var baseTraits = targets[baselineIndex].Traits;
        for (int t = 0; t < observations.Length; t++)
        {
            if (t == baselineIndex || observations[t] is not { Kind: not OutcomeKind.Unsupported } other)
            {
                continue;
            }

            bool bothReportWrites = baseTraits.HasFlag(TargetTraits.AccessedDirtyWrites) && targets[t].Traits.HasFlag(TargetTraits.AccessedDirtyWrites);
            bool same = bothReportWrites
                ? ObservationComparer.SameWrites(baseline.Writes, other.Writes)
                : ObservationComparer.Compare(baseline, baseTraits, other, targets[t].Traits) == Difference.None;
            if (!same)
            {
                return false;
            }
        }

        return true;
    }

    private CaseResult? FinishBatchTargets()
    {
        if (!batch.Any)
        {
            return null;
        }

        blame.Target(Array.FindIndex(targets, t => !t.Traits.HasFlag(TargetTraits.Immediate)));
        switch (batch.FinishAndCompare(cpu, Controls, ref compared, ref unsupported))
        {
            case BatchDivergence d:
                currentIndex = d.StepIndex;
                return Divergence(@case.Steps[d.StepIndex], d.Baseline, d.BaselineObservation, d.Other, d.OtherObservation, d.Difference, batch.AllObservations(d.StepIndex, null));
            case BatchExpectationFailure f:
                currentIndex = f.StepIndex;
                var step = @case.Steps[f.StepIndex];
                return Fail(CaseStatus.ExpectationFailed, step.Line, $"{StepKey(step)}: {targets[f.Target].Name}: {f.Why}", step) with { Observations = Answers(batch.AllObservations(f.StepIndex, null)) };
            default:
                return null;
        }
    }

    private CaseResult Divergence(Step step, int a, Observation oa, int b, Observation ob, Difference diff, Observation?[] all)
    {
        var signature = new DivergenceSignature(
            StepKey(step), targets[a].Name, oa.Kind.Text(), targets[b].Name, ob.Kind.Text(),
            DivergenceSignature.DescribeFields(diff, (oa.Qualification ^ ob.Qualification) & ObservationComparer.QualificationMask(targets[a].Traits, targets[b].Traits)));

        if (batch.Any && !batch.Finished)
        {
            batch.FinishForTriage(currentIndex);
        }

        all = batch.AllObservations(currentIndex, all);
        var triage = Comparing.Triage.Of(all, targets);
        var message = $"{StepKey(step)}: {targets[a].Name} says {Describe.Observation(oa)}; {targets[b].Name} says {Describe.Observation(ob)}"
            + (triage is null ? string.Empty : $"; triage: {triage}");
        return Diverged(step, signature, message, all, triage);
    }

    /// <summary>
    /// Code under test failed instead of answering (<see cref="TargetFaultException"/>): a finding
    /// <c>STEP|TARGET:KIND|-:-|DETAIL</c> at the step that was running, with the target's log.
    /// </summary>
    public CaseResult Faulted(TargetFaultException e)
    {
        // A pipelined command (an external target's lookup) fails later than the step that asked.
        if (e.StepIndex is int at && at >= 0 && at < @case.Steps.Length)
        {
            currentIndex = at;
        }

        var step = CurrentStep;
        string key = step is null ? "case" : StepKey(step);
        var signature = DivergenceSignature.Fault(key, e.Target, e.OutcomeText, e.Detail);
        var diagnostics = e.Log is { Length: > 0 } log ? $"{e.Message}\ntarget stderr (tail):\n{log}" : e.Message;
        return Stopped(step, signature, $"{key}: {e.Message}", diagnostics);
    }

    /// <summary>
    /// The hypervisor or a target threw: it crashed on this input. A finding, reported with its
    /// stack, never swallowed: <c>STEP|WHO:crash|-:-|TYPE</c> for a target,
    /// <c>STEP|HYPERVISOR:crash|-:-|TYPE@METHOD</c> for the hypervisor (where it threw tells bugs apart).
    /// </summary>
    public CaseResult Crashed(Exception e)
    {
        var step = CurrentStep;
        string key = step is null ? "case" : StepKey(step);
        string detail = e.GetType().Name;
        if (blame.IsHypervisor)
        {
            detail += "@" + (new StackTrace(e, false).GetFrame(0)?.GetMethod()?.Name ?? "unknown");
        }

        var signature = DivergenceSignature.Fault(key, blame.Who, "crash", detail);
        return Stopped(step, signature, $"{key}: {blame.Who} threw {e.GetType().Name}: {e.Message}", e.ToString());
    }

    private CaseResult Stopped(Step? step, DivergenceSignature signature, string message, string diagnostics)
    {
        if (step is null)
        {
            string text = signature.ToString();
            var known = options.Known.ReasonFor(text);
            return new CaseResult
            {
                File = @case.SourceName,
                Status = known is null ? CaseStatus.Diverged : CaseStatus.KnownDivergence,
                Message = message,
                Divergence = signature,
                KnownReason = known,
                Diagnostics = diagnostics,
                Replay = options.ReplayCommand(@case.SourceName),
                Counters = Counters,
            };
        }

        return Diverged(step, signature, message, null, null) with { Diagnostics = diagnostics };
    }

    private CaseResult Diverged(Step step, DivergenceSignature signature, string message, Observation?[]? all, string? triage)
    {
        var known = options.Known.ReasonFor(signature.ToString());
        return new CaseResult
        {
            File = @case.SourceName,
            Status = known is null ? CaseStatus.Diverged : CaseStatus.KnownDivergence,
            Message = $"step {currentIndex + 1} (line {step.Line}): {message}",
            Line = step.Line,
            Column = step.Position.Column,
            Divergence = signature,
            KnownReason = known,
            Step = step,
            StepNumber = currentIndex + 1,
            Observations = all is null ? [] : Answers(all),
            Triage = triage,
            Replay = options.ReplayCommand(@case.SourceName),
            Counters = Counters,
        };
    }

    /// <summary>
    /// The case asks for something no target can give it (more table pages than the pool holds):
    /// bad input, located like a parse error, <c>FILE:LINE:COLUMN: message</c> (a case built in
    /// code, without positions, names its step number instead).
    /// </summary>
    private CaseResult Refused(int index, string message)
    {
        string file = @case.SourceName.Length > 0 ? @case.SourceName : "case";
        Step? step = index >= 0 ? @case.Steps[index] : null;
        string where = step switch
        {
            null => file,
            { Line: > 0 } => $"{file}:{step.Line}:{step.Position.Column}",
            _ => $"{file}: step {index + 1}",
        };
        return new CaseResult
        {
            File = @case.SourceName,
            Status = CaseStatus.BadInput,
            Message = $"{where}: {message}",
            Line = step?.Line ?? 0,
            Column = step?.Position.Column ?? 0,
            StepNumber = index + 1,
            Counters = Counters,
        };
    }

    private CaseResult Fail(CaseStatus status, int line, string message, Step? step = null) => new()
    {
        File = @case.SourceName,
        Status = status,
        Message = line > 0 ? $"line {line}: {message}" : message,
        Line = line,
        Step = step,
        StepNumber = step is null ? 0 : currentIndex + 1,
        Replay = step is null ? string.Empty : options.ReplayCommand(@case.SourceName),
        Counters = Counters,
    };

    /// <summary>The observations as data, each with its target's name and rule names.</summary>
    private List<TargetObservation> Answers(Observation?[] all)
    {
        var answers = new List<TargetObservation>(all.Length);
        for (int t = 0; t < all.Length; t++)
        {
            if (all[t] is { } o)
            {
                answers.Add(new TargetObservation(targets[t].Name, o, targets[t].RuleNames));
            }
        }

        return answers;
    }

    private void TraceProbe(Observation?[] observations)
    {
        var sb = new StringBuilder();
        for (int t = 0; t < sessions.Length; t++)
        {
            if (observations[t] is { } o)
            {
                CaseReport.AppendObservation(sb, new TargetObservation(targets[t].Name, o, targets[t].RuleNames), "  ");
            }
            else
            {
                sb.Append($"  {targets[t].Name}: (answers at the end of the case)\n");
            }
        }

        options.Trace!.Write(sb.ToString());
    }

    private void Trace(string line) => options.Trace?.WriteLine(line);

    /// <summary>"read.gpa", "write.gva", "entry", …: the step kind part of a signature.</summary>
    public static string StepKey(Step step) => step switch
    {
        AccessStep a => $"{a.Verb}.{(a.Gva is null ? "gpa" : "gva")}",
        _ => step.Verb,
    };
}
