using System.Text;
using EptFuzz.Contract;
using EptFuzz.Harness.Cases;
using EptFuzz.Harness.Comparing;
using EptFuzz.Harness.Intent;

namespace EptFuzz.Harness.Running;

/// <summary>The state of one case while it runs.</summary>
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
    private readonly Scratch scratch;
    private bool disposed;
    /// <summary>A target answers only at the end of the case (the VMX oracle): probes are kept for it.</summary>
    private readonly bool hasBatchTargets;
    private readonly List<HypervisorEffect> effects;

    /// <summary>Host memory as the translators see it, kept only to know what a raw write overwrote.</summary>
    private readonly WordMirror mirror;
    /// <summary>Entries a raw write changed since the last INVEPT: translations through them may be stale.</summary>
    private readonly HashSet<ulong> staleEntries;
    /// <summary>Every immediate target's observation of each probe, by step index, for triage.</summary>
    private readonly Dictionary<int, Observation?[]> probeObservations;
    /// <summary>Batch targets' answers once they finished (by target index).</summary>
    private readonly Dictionary<int, IReadOnlyDictionary<int, Observation>> batchAnswers = new();
    /// <summary>EPTP[51:12] values that were current since the last global INVEPT.</summary>
    private readonly HashSet<ulong> rootsSinceGlobalInvept;
    /// <summary>4 KiB pages that hold EPT entries written by operations.</summary>
    private readonly HashSet<ulong> tablePages;
    /// <summary>The page last added to <see cref="tablePages"/>: operations write runs of entries into one page.</summary>
    private ulong lastTablePage = ulong.MaxValue;
    /// <summary>Baseline observations of probes, for batch targets compared after the case.</summary>
    private readonly List<(int Step, Observation Baseline, bool Stale)> probes;

    /// <summary>
    /// The collections a case fills, kept per thread with their capacity for the next case: a
    /// worker runs thousands of cases a second on one thread, and growing them anew for each was
    /// a tenth of what a case allocated. Nothing in them outlives the case (results copy).
    /// </summary>
    private sealed class Scratch
    {
        public readonly List<HypervisorEffect> Effects = new(64);
        public readonly WordMirror Mirror = new();
        public readonly HashSet<ulong> StaleEntries = [];
        public readonly Dictionary<int, Observation?[]> ProbeObservations = [];
        public readonly HashSet<ulong> RootsSinceGlobalInvept = [];
        public readonly HashSet<ulong> TablePages = [];
        public readonly List<(int Step, Observation Baseline, bool Stale)> Probes = [];

        public void Clear()
        {
            Effects.Clear();
            Mirror.Release();
            StaleEntries.Clear();
            ProbeObservations.Clear();
            RootsSinceGlobalInvept.Clear();
            // A case that touched thousands of table pages does not leave that capacity behind.
            bool large = TablePages.Count > 4096;
            TablePages.Clear();
            if (large)
            {
                TablePages.TrimExcess();
            }

            Probes.Clear();
        }
    }

    [ThreadStatic]
    private static Scratch? t_scratch;

    private int compared;
    private int staleAllowed;
    private int unsupported;
    private int expectations;
    private int probeCount;
    /// <summary>True once a stale-allowed access left translators with different A/D state.</summary>
    private bool desynchronized;
    /// <summary>Index of the step being reported (steps can be equal records, so never search for one).</summary>
    private int currentIndex;

    public CaseExecution(EptCase @case, RunOptions options)
    {
        this.@case = @case;
        this.options = options;
        cpu = @case.Steps.Length > 0 && @case.Steps[0] is CpuStep c ? c.ToCapabilities() : CpuCapabilities.Default;
        hypervisor = options.Hypervisor();
        targets = [.. options.Targets];
        sessions = new ITargetSession[targets.Length];
        for (int i = 0; i < targets.Length; i++)
        {
            sessions[i] = targets[i].Open(cpu);
        }

        intent = new IntentModel(cpu);
        hasBatchTargets = targets.Any(t => !t.Traits.HasFlag(TargetTraits.Immediate));
        // A case run inside another on the same thread finds no scratch and makes its own.
        scratch = t_scratch ?? new Scratch();
        t_scratch = null;
        effects = scratch.Effects;
        mirror = scratch.Mirror;
        staleEntries = scratch.StaleEntries;
        probeObservations = scratch.ProbeObservations;
        rootsSinceGlobalInvept = scratch.RootsSinceGlobalInvept;
        tablePages = scratch.TablePages;
        probes = scratch.Probes;
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

    /// <summary>The step being run (null before the first), for a fault raised by the code under test.</summary>
    public Step? CurrentStep => currentIndex < @case.Steps.Length && @case.Steps.Length > 0 ? @case.Steps[currentIndex] : null;

    public int CurrentIndex => currentIndex;

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
        scratch.Clear();
        t_scratch = scratch;
    }

    public CaseResult Run()
    {
        var configured = hypervisor.Configure(cpu);
        if (configured != ApiResult.Ok)
        {
            return Fail(CaseStatus.BadInput, 0, $"the hypervisor refused the processor ({configured})", null);
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

    private CaseResult? Operation(int index, Step step)
    {
        ApiResult result;
        ApiResult? intended = null;
        // Once a raw write made everything unknown, the intent's answer for a mapping operation
        // would be discarded (below) and its state is never consulted again: skip the work (a split
        // of a 1 GiB page into 4 KiB pages changes 512 tables). A trace still shows it.
        bool consultIntent = !intent.AllUnknown || options.Trace is not null;
        bool raw = false;
        bool tables = true;
        switch (step)
        {
            case CpuStep:
                return null;
            case EptpStep e:
                result = hypervisor.SetEptp(e.ToRequest());
                if (result == ApiResult.Ok)
                {
                    if (e.Raw is null)
                    {
                        intent.SetWalkLength(e.WalkLength ?? 4);
                    }
                    else
                    {
                        // The translators now walk a root the operations do not know; the
                        // hypervisor's operations keep using its own root and walk length.
                        intent.MarkAllUnknown();
                    }
                }

                break;
            case ControlsStep c:
                result = hypervisor.SetControls(c.ToControls());
                intent.Controls = hypervisor.Controls;
                break;
            case GuestStep g:
                result = hypervisor.SetGuestPaging(g.ToGuestPaging(), g.TablesStart ?? default, g.TablesEnd ?? default);
                tables = false;
                break;
            case MapStep m:
                result = hypervisor.Map(m.Gpa, m.Hpa, m.Size, m.Permissions, m.EffectiveMemoryType, m.IgnorePat ?? false);
                intended = consultIntent ? intent.Map(m.Gpa.Value, m.Hpa.Value, m.Size, m.Permissions, m.EffectiveMemoryType, m.IgnorePat ?? false) : null;
                break;
            case UnmapStep u:
                result = hypervisor.Unmap(u.Gpa, u.Size);
                intended = consultIntent ? intent.Unmap(u.Gpa.Value, u.Size) : null;
                break;
            case ProtectStep p:
                result = hypervisor.Protect(p.Gpa, p.Size, p.Permissions);
                intended = consultIntent ? intent.Protect(p.Gpa.Value, p.Size, p.Permissions) : null;
                break;
            case RetypeStep r:
                result = hypervisor.Retype(r.Gpa, r.Size, r.MemoryType, r.IgnorePat ?? false);
                intended = consultIntent ? intent.Retype(r.Gpa.Value, r.Size, r.MemoryType, r.IgnorePat ?? false) : null;
                break;
            case SplitStep s:
                result = hypervisor.Split(s.Gpa);
                intended = consultIntent ? intent.Split(s.Gpa.Value) : null;
                break;
            case MergeStep m:
                result = hypervisor.Merge(m.Gpa, m.Size);
                intended = consultIntent ? intent.Merge(m.Gpa.Value, m.Size) : null;
                break;
            case MemoryStep m:
                result = hypervisor.AddMemoryRange(m.Start, m.End, m.MemoryType);
                intended = intent.AddMemoryRange(m.Start.Value, m.End.Value, m.MemoryType);
                break;
            case IdentityMapStep im:
                result = hypervisor.IdentityMap(im.Offset ?? 0, im.OffsetFrom ?? default);
                intended = consultIntent ? intent.IdentityMap(im.Offset ?? 0, (im.OffsetFrom ?? default).Value) : null;
                break;
            case InveptStep inv:
                result = hypervisor.Invept(inv.Type);
                break;
            case EditStep e:
                result = hypervisor.Edit(e.Gpa, e.Level, e.Set ?? 0, e.Clear ?? 0, e.LeafHpa);
                raw = true;
                tables = false;
                if (result == ApiResult.Ok)
                {
                    ulong span = LevelSpan(e.Level);
                    ulong start = e.Gpa.Value & ~(span - 1);
                    intent.MarkUnknown(start, start + span);
                }

                break;
            case PokeStep p:
                result = hypervisor.Poke(p.Hpa, p.Value);
                raw = true;
                tables = false;
                if (result == ApiResult.Ok)
                {
                    // Any host page may be (or become) an EPT table page; the harness cannot tell.
                    intent.MarkAllUnknown();
                }

                break;
            case GMapStep gm:
                result = hypervisor.GMap(gm.Gva, gm.Gpa, gm.Size, gm.Permissions.HasFlag(GuestPagePermissions.Writable), gm.Permissions.HasFlag(GuestPagePermissions.User), gm.Permissions.HasFlag(GuestPagePermissions.Executable));
                raw = true;
                tables = false;
                break;
            case GEditStep ge:
                result = hypervisor.GEdit(ge.Gva, ge.Level, ge.Set ?? 0, ge.Clear ?? 0);
                raw = true;
                tables = false;
                break;
            default:
                return Fail(CaseStatus.BadInput, step.Line, $"step {step.Verb} is not an operation", null);
        }

        if (options.Trace is not null)
        {
            Trace($"  hypervisor: {result}{(intended is { } ir && options.CheckIntent ? $"   intent: {ir}" : string.Empty)}");
        }
        if (result == ApiResult.ResourceLimit)
        {
            return Fail(CaseStatus.BadInput, step.Line, $"{step.Verb}: the case asks for more table pages than the hypervisor's pool allows; refused", null);
        }

        Forward(raw, tables);
        if (step is EptpStep && result == ApiResult.Ok)
        {
            ulong root = hypervisor.Eptp & RootMask;
            tablePages.Add(root >> 12);
            rootsSinceGlobalInvept.Add(root);
            foreach (var s in sessions)
            {
                s.SetEptp(hypervisor.Eptp);
            }
        }
        else if (step is ControlsStep && result == ApiResult.Ok)
        {
            foreach (var s in sessions)
            {
                s.SetControls(hypervisor.Controls);
            }
        }
        else if (step is GuestStep && result == ApiResult.Ok)
        {
            foreach (var s in sessions)
            {
                s.SetGuestPaging(hypervisor.GuestPaging);
            }
        }

        options.Observer?.OnOperation(index, step, result);

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
            return Diverged(step, signature, $"{step.Verb}: {hypervisor.Name} says {result}, its arguments mean {guestWant}", null);
        }

        if (step is GuestStep gs && result == ApiResult.Ok)
        {
            guestPagingOn = gs.Paging;
        }

        if (options.CheckIntent && intended is { } want && want != result)
        {
            var signature = new DivergenceSignature(step.Verb, hypervisor.Name, result.ToString(), "intent", want.ToString(), "result");
            return Diverged(step, signature, $"{step.Verb}: {hypervisor.Name} says {result}, the operations so far mean {want}", null);
        }

        if (step.Expectation is { } expectation)
        {
            expectations++;
            if (expectation is not ResultExpectation expected)
            {
                return Fail(CaseStatus.BadInput, step.Line, $"{step.Verb} is an operation: its expectation must be ok or an error name", null);
            }

            if (expected.Result != result)
            {
                return Fail(CaseStatus.ExpectationFailed, step.Line, $"{step.Verb}: expected {expected.Result}, {hypervisor.Name} says {result}", null);
            }
        }

        return null;
    }

    /// <summary>Hands the hypervisor's writes and INVEPTs to every translator, in order.</summary>
    private void Forward(bool raw, bool tables)
    {
        effects.Clear();
        hypervisor.DrainEffects(effects);
        foreach (var effect in effects)
        {
            if (effect.Kind == EffectKind.Invept)
            {
                // Single-context INVEPT only drops translations tagged with the current EPTP's root;
                // ones cached under another root survive, so stale entries stay stale unless this
                // case has used one root since the last global INVEPT.
                ulong current = hypervisor.Eptp & RootMask;
                if (effect.InveptType == InveptType.Global || rootsSinceGlobalInvept.Count <= 1)
                {
                    staleEntries.Clear();
                }

                if (effect.InveptType == InveptType.Global)
                {
                    rootsSinceGlobalInvept.Clear();
                    rootsSinceGlobalInvept.Add(current);
                }

                foreach (var s in sessions)
                {
                    s.Invept(effect.InveptType);
                }

                continue;
            }

            if (effect.Kind == EffectKind.Page)
            {
                ForwardPage(effect.Write.Address, effect.Words!, raw, tables);
                continue;
            }

            ForwardWrite(effect.Write, raw, tables);
        }
    }

    /// <summary>A whole page the hypervisor wrote (a new table): copied at once when nothing needs the words it replaced.</summary>
    private void ForwardPage(Hpa page, ulong[] words, bool raw, bool tables)
    {
        if (raw || !tables)
        {
            for (int i = 0; i < words.Length; i++)
            {
                ForwardWrite(new MemoryWrite(new Hpa(page.Value + ((ulong)i << 3)), words[i]), raw, tables);
            }

            return;
        }

        mirror.WritePage(page.Value, words);
        lastTablePage = page.Value >> 12;
        tablePages.Add(lastTablePage);
        foreach (var s in sessions)
        {
            s.WritePage(page, words);
        }
    }

    private void ForwardWrite(MemoryWrite write, bool raw, bool tables)
    {
        ulong address = write.Address.Value;
        ulong old = mirror.Exchange(address, write.Value);
        if (tables)
        {
            if (address >> 12 != lastTablePage)
            {
                lastTablePage = address >> 12;
                tablePages.Add(lastTablePage);
            }
        }
        else if (tablePages.Contains(address >> 12) && write.Value != old)
        {
            // A raw write landed in an EPT table page: the intent no longer knows what maps where.
            intent.MarkAllUnknown();
        }

        // Nothing is cached from an all-zero (not-present) entry, so overwriting one cannot leave
        // a stale translation behind.
        if (raw && old != 0 && old != write.Value)
        {
            staleEntries.Add(address);
        }

        foreach (var s in sessions)
        {
            s.Write(write);
        }
    }

    private CaseResult? Probe(int index, Step step)
    {
        probeCount++;
        Probe probe = step switch
        {
            AccessStep a => Contract.Probe.ForAccess(index, a.ToAccess()),
            EntryStep e => Contract.Probe.ForEntry(index, e.Gpa, e.Level),
            _ => Contract.Probe.ForVmEntry(index),
        };

        var observations = new Observation?[sessions.Length];
        for (int t = 0; t < sessions.Length; t++)
        {
            observations[t] = Submit(t, probe, step, out var crash);
            if (crash is not null)
            {
                return crash;
            }
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
            var sb = new StringBuilder();
            for (int t = 0; t < sessions.Length; t++)
            {
                if (observations[t] is { } o)
                {
                    AppendObservation(sb, t, o, "  ");
                }
                else
                {
                    sb.Append($"  {targets[t].Name}: (answers at the end of the case)\n");
                }
            }

            options.Trace.Write(sb.ToString());
        }

        if (baselineIndex < 0)
        {
            // No immediate target answered: only batch targets can (or none, and nothing is compared).
            probes.Add((index, Observation.Unsupported("no immediate target"), false));
            return null;
        }

        var baseline = observations[baselineIndex]!;
        bool stale = desynchronized || (staleEntries.Count > 0 && TouchesStale(observations));
        if (hasBatchTargets)
        {
            // Only the batch targets' answers, compared after the case, look back at these.
            probeObservations[index] = observations;
            probes.Add((index, baseline, stale));
        }
        if (stale)
        {
            // Spec: a processor may keep using translations cached before a raw write until INVEPT.
            staleAllowed++;
            if (desynchronized)
            {
                Trace("  stale-allowed: an earlier stale-allowed access left the translators' A/D state different");
                return null;
            }

            Trace("  stale-allowed: the walk touches an entry a raw write changed since the last invept");
            if (!AllAgree(observations, baselineIndex))
            {
                // A/D flags are sticky: once a stale translation made one translator set (or skip)
                // flags another did not, later walks may legitimately differ. Compare no more.
                desynchronized = true;
                return null;
            }

            CommitWrites(baseline);
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
                return Diverged(step, signature, $"{StepKey(step)}: {targets[baselineIndex].Name} says {Describe.Observation(baseline)}, the operations so far mean {mismatch.Expected}", observations);
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
                    return Fail(CaseStatus.ExpectationFailed, step.Line, $"{StepKey(step)}: {targets[t].Name}: {why}", Report(step, observations, null));
                }
            }
        }

        CommitWrites(baseline);
        return null;
    }

    /// <summary>
    /// The translators agreed on the A/D bits this access set: write them into the hypervisor's
    /// memory too (unjournaled: every session already applied its own), so that an operation that
    /// later rewrites an entry starts from the bytes the processor left.
    /// </summary>
    private void CommitWrites(Observation baseline)
    {
        foreach (var w in baseline.Writes)
        {
            mirror.Exchange(w.Address.Value, w.Value);
            hypervisor.Memory.Write(w.Address, w.Value);
        }
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

    private Observation? Submit(int t, Probe probe, Step step, out CaseResult? crash)
    {
        crash = null;
        try
        {
            return sessions[t].Submit(probe);
        }
        catch (TargetFailureException)
        {
            throw;
        }
        catch (TargetFaultException)
        {
            // A fault of code under test has its own signature (CaseRunner).
            throw;
        }
        catch (Exception e) when (e is not OutOfMemoryException)
        {
            // A target that throws on a probe has crashed on this input: that is a finding, reported
            // with its stack, never swallowed.
            var signature = new DivergenceSignature(StepKey(step), targets[t].Name, "crash", "-", "-", e.GetType().Name);
            crash = Diverged(step, signature, $"{StepKey(step)}: {targets[t].Name} threw {e.GetType().Name}: {e.Message}", null) with { Detail = e.ToString() };
            return null;
        }
    }

    private bool TouchesStale(Observation?[] observations)
    {
        // Judge by the walk of a target that does not cache translations: it read what is there now.
        for (int t = 0; t < observations.Length; t++)
        {
            if (observations[t] is { } o && !targets[t].Traits.HasFlag(TargetTraits.CachesTranslations) && targets[t].Traits.HasFlag(TargetTraits.Walk))
            {
                foreach (var e in o.Walk)
                {
                    if (staleEntries.Contains(e.Address.Value))
                    {
                        return true;
                    }
                }

                return false;
            }
        }

        // Nobody can say which entries the access uses: be safe and do not compare.
        return true;
    }

    private CaseResult? FinishBatchTargets()
    {
        for (int t = 0; t < sessions.Length; t++)
        {
            if (targets[t].Traits.HasFlag(TargetTraits.Immediate))
            {
                continue;
            }

            var answers = sessions[t].Finish();
            batchAnswers[t] = answers;
            bool batchDesynchronized = false;
            int baselineIndex = Array.FindIndex(targets, x => x.Traits.HasFlag(TargetTraits.Immediate));
            if (options.Trace is not null)
            {
                var sb = new StringBuilder();
                sb.Append($"{targets[t].Name} answered at the end of the case{(sessions[t].UnsupportedReason is { } why ? $" (unsupported: {why})" : string.Empty)}:\n");
                foreach (var (stepIndex, _, _) in probes)
                {
                    sb.Append($"  step {stepIndex + 1} (line {@case.Steps[stepIndex].Line}): ");
                    if (answers.TryGetValue(stepIndex, out var answer))
                    {
                        AppendObservation(sb, t, answer, string.Empty);
                    }
                    else
                    {
                        sb.Append("no answer\n");
                    }
                }

                options.Trace.Write(sb.ToString());
            }

            foreach (var (stepIndex, baseline, stale) in probes)
            {
                var step = @case.Steps[stepIndex];
                currentIndex = stepIndex;
                if (!answers.TryGetValue(stepIndex, out var other) || other.Kind == OutcomeKind.Unsupported)
                {
                    unsupported++;
                    continue;
                }

                if (batchDesynchronized || baselineIndex < 0 || baseline.Kind == OutcomeKind.Unsupported)
                {
                    continue;
                }

                if (stale)
                {
                    // As for immediate targets: a stale-allowed access whose answers differ may leave
                    // different A/D state behind, so nothing after it is compared for this target.
                    batchDesynchronized |= ObservationComparer.Compare(baseline, targets[baselineIndex].Traits, other, targets[t].Traits) != Difference.None;
                    continue;
                }

                compared++;
                var diff = ObservationComparer.Compare(baseline, targets[baselineIndex].Traits, other, targets[t].Traits);
                if (diff != Difference.None)
                {
                    return Divergence(step, baselineIndex, baseline, t, other, diff, AllObservations(stepIndex));
                }

                if (step.Expectation is { } expectation && ExpectationCheck.Check(expectation, other, targets[t].Traits, cpu, Controls) is { } why)
                {
                    return Fail(CaseStatus.ExpectationFailed, step.Line, $"{StepKey(step)}: {targets[t].Name}: {why}", null);
                }
            }
        }

        return null;
    }

    private CaseResult Divergence(Step step, int a, Observation oa, int b, Observation ob, Difference diff, Observation?[] all)
    {
        var signature = new DivergenceSignature(
            StepKey(step), targets[a].Name, oa.Kind.Text(), targets[b].Name, ob.Kind.Text(),
            DivergenceSignature.DescribeFields(diff, (oa.Qualification ^ ob.Qualification) & ObservationComparer.QualificationMask(targets[a].Traits, targets[b].Traits)));

        // A divergence among the immediate targets stops the case before any batch target (the
        // VMX oracle) answered: ask them now, so the report can say who is out of step.
        if (targets.Any(t => !t.Traits.HasFlag(TargetTraits.Immediate)) && batchAnswers.Count == 0)
        {
            FinishForTriage();
            all = AllObservations(currentIndex);
        }

        var triage = Triage(all);
        var message = $"{StepKey(step)}: {targets[a].Name} says {Describe.Observation(oa)}; {targets[b].Name} says {Describe.Observation(ob)}"
            + (triage is null ? string.Empty : $"; triage: {triage}");
        return Diverged(step, signature, message, all);
    }

    /// <summary>Every target's observation of one probe: the immediate ones and, once finished, the batch ones.</summary>
    private Observation?[] AllObservations(int stepIndex)
    {
        var all = probeObservations.TryGetValue(stepIndex, out var immediate) ? (Observation?[])immediate.Clone() : new Observation?[sessions.Length];
        foreach (var (t, answers) in batchAnswers)
        {
            if (answers.TryGetValue(stepIndex, out var o))
            {
                all[t] = o;
            }
        }

        return all;
    }

    private void FinishForTriage()
    {
        for (int t = 0; t < sessions.Length; t++)
        {
            if (targets[t].Traits.HasFlag(TargetTraits.Immediate))
            {
                continue;
            }

            try
            {
                batchAnswers[t] = sessions[t].Finish();
            }
            catch (TargetFailureException e)
            {
                // The finding stands on its own; the oracle's failure is said, not hidden.
                Trace($"  {targets[t].Name} could not answer for triage: {e.Message}");
                batchAnswers[t] = new Dictionary<int, Observation> { [currentIndex] = Observation.Unsupported($"failed: {e.Message}") };
            }
        }
    }

    /// <summary>
    /// With three kinds of translator, who is out of step: the implementation alone (an
    /// implementation bug), the oracle alone (a model bug or an emulator deviation), the model
    /// alone (a model bug), or all apart. Null when fewer than three targets answered.
    /// </summary>
    private string? Triage(Observation?[] all)
    {
        var answered = Enumerable.Range(0, all.Length).Where(t => all[t] is { Kind: not OutcomeKind.Unsupported }).ToList();
        if (answered.Count < 3)
        {
            return null;
        }

        var groups = new List<List<int>>();
        foreach (int t in answered)
        {
            var group = groups.FirstOrDefault(g => ObservationComparer.Compare(all[g[0]]!, targets[g[0]].Traits, all[t]!, targets[t].Traits) == Difference.None);
            if (group is null)
            {
                groups.Add([t]);
            }
            else
            {
                group.Add(t);
            }
        }

        if (groups.Count == answered.Count)
        {
            return $"all {answered.Count} translators differ";
        }

        if (groups.Count != 2 || groups.Min(g => g.Count) != 1)
        {
            return $"{groups.Count} groups of answers";
        }

        int alone = groups.First(g => g.Count == 1)[0];
        string others = string.Join(" and ", groups.First(g => g.Count > 1).Select(t => targets[t].Name));
        string role = targets[alone].Traits.HasFlag(TargetTraits.SoftwareWalk)
            ? "a bug in the target's own lookup, as it alone differs"
            : !targets[alone].Traits.HasFlag(TargetTraits.Immediate)
            ? "a model bug or an emulator deviation (see ept-rules.md §18), as the oracle alone differs"
            : targets[alone].RuleNames.Count > 0 ? "a model bug, as the model alone differs" : "an implementation bug, as it alone differs";
        return $"{targets[alone].Name} differs from {others}: {role}";
    }

    private CaseResult Diverged(Step step, DivergenceSignature signature, string message, Observation?[]? all)
    {
        string text = signature.ToString();
        var known = options.Known.ReasonFor(text);
        return new CaseResult
        {
            File = @case.SourceName,
            Status = known is null ? CaseStatus.Diverged : CaseStatus.KnownDivergence,
            Message = $"step {StepNumber(step)} (line {step.Line}): {message}",
            Line = step.Line,
            Column = step.Position.Column,
            Signature = text,
            KnownReason = known,
            Detail = Report(step, all, text),
            Counters = Counters,
        };
    }

    private CaseResult Fail(CaseStatus status, int line, string message, string? detail) => new()
    {
        File = @case.SourceName,
        Status = status,
        Message = line > 0 ? $"line {line}: {message}" : message,
        Line = line,
        Detail = detail ?? string.Empty,
        Counters = Counters,
    };

    /// <summary>Each translator's observation and walk, the rules the model fired, and how to replay.</summary>
    private string Report(Step step, Observation?[]? all, string? signature)
    {
        var sb = new StringBuilder();
        sb.Append($"step {StepNumber(step)}, line {step.Line}: {CasePrinter.PrintStep(step)}\n");
        if (signature is not null)
        {
            sb.Append($"signature: {signature}\n");
        }

        if (all is not null)
        {
            for (int t = 0; t < all.Length; t++)
            {
                if (all[t] is not { } o)
                {
                    continue;
                }

                AppendObservation(sb, t, o, string.Empty);
            }
        }

        sb.Append($"replay: {options.ReplayCommand(@case.SourceName)}\n");
        return sb.ToString();
    }

    /// <summary>One translator's observation, its walk decoded entry by entry, and the rules it fired.</summary>
    private void AppendObservation(StringBuilder sb, int t, Observation o, string indent)
    {
        sb.Append($"{indent}{targets[t].Name}: {Describe.Observation(o)}\n");
        foreach (var line in Describe.Walk(o.Walk))
        {
            sb.Append(indent).Append("    ").Append(line).Append('\n');
        }

        if (!o.Rules.IsEmpty && targets[t].RuleNames.Count > 0)
        {
            var names = o.Rules.Indices().Where(i => i < targets[t].RuleNames.Count).Select(i => targets[t].RuleNames[i]);
            sb.Append($"{indent}    rules fired: {string.Join(' ', names)}\n");
        }
    }

    private int StepNumber(Step step) => currentIndex + 1;

    private void Trace(string line) => options.Trace?.WriteLine(line);

    /// <summary>"read.gpa", "write.gva", "entry", …: the step kind part of a signature.</summary>
    public static string StepKey(Step step) => step switch
    {
        AccessStep a => $"{a.Verb}.{(a.Gva is null ? "gpa" : "gva")}",
        _ => step.Verb,
    };

    private static ulong LevelSpan(EptLevel level) => 1UL << (12 + 9 * ((int)level - 1));

    private const ulong RootMask = 0x000F_FFFF_FFFF_F000UL;
}
