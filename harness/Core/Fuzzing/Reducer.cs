using System.Diagnostics;
using System.Numerics;
using EptFuzz.Contract;
using EptFuzz.Harness.Cases;
using EptFuzz.Harness.Fuzzing.Simplifiers;
using EptFuzz.Harness.Running;

namespace EptFuzz.Harness.Fuzzing;

/// <summary>What a reduction produced.</summary>
public sealed record ReductionResult
{
    /// <summary>The smallest case found that still shows <see cref="Signature"/> (the input when it did not reproduce).</summary>
    public required EptCase Case { get; init; }

    public required string Signature { get; init; }

    /// <summary>False when the input did not show the signature at all (nothing was reduced).</summary>
    public required bool Reproduced { get; init; }

    public required int StepsBefore { get; init; }

    public required int StepsAfter { get; init; }

    public required TimeSpan Elapsed { get; init; }

    /// <summary>Candidate cases run.</summary>
    public required int Runs { get; init; }

    /// <summary>True when the time cap (or cancellation) stopped the reduction before it reached a fixed point.</summary>
    public required bool TimedOut { get; init; }

    /// <summary>The run of <see cref="Case"/> (its message and detail describe each side's observation).</summary>
    public required CaseResult Result { get; init; }
}

/// <summary>
/// Shrinks a diverging case while it keeps the same divergence signature and stays valid: first
/// delta debugging over the steps (ddmin, removing complements), then each step simplified by
/// its kind's unit in <see cref="StepSimplifiers"/> (optional keys dropped, smaller page sizes,
/// fewer permissions and bits, page-aligned and smaller addresses), and mapped regions moved to
/// small addresses, until nothing more helps or the time cap is reached. A candidate is taken
/// only when it is strictly smaller (<see cref="Cost"/>), so the result never grows.
/// </summary>
public static class Reducer
{
    public static readonly TimeSpan DefaultCap = TimeSpan.FromSeconds(60);

    /// <summary>The key of a failed expectation, which has no divergence signature.</summary>
    public const string ExpectationFailedKey = "expectation-failed";

    /// <summary>What a result must keep to count as "the same failure": its signature, or for a failed expectation the status.</summary>
    public static string? KeyOf(CaseResult result)
    {
        ArgumentNullException.ThrowIfNull(result);
        return result.Signature ?? (result.Status == CaseStatus.ExpectationFailed ? ExpectationFailedKey : null);
    }

    /// <summary>Runs the case once to learn its signature, then reduces; null when the case shows no failure to keep.</summary>
    public static ReductionResult? Reduce(EptCase c, RunOptions options, TimeSpan cap)
    {
        ArgumentNullException.ThrowIfNull(options);
        CaseResult first = CaseRunner.Run(c, options);
        return KeyOf(first) is { } key ? Reduce(c, x => CaseRunner.Run(x, options), key, cap) : null;
    }

    /// <param name="cancellation">Ends the reduction early, like the cap: the result so far is valid and keeps the signature.</param>
    public static ReductionResult Reduce(EptCase c, Func<EptCase, CaseResult> run, string signature, TimeSpan cap, CancellationToken cancellation = default)
    {
        ArgumentNullException.ThrowIfNull(c);
        ArgumentNullException.ThrowIfNull(run);
        ArgumentNullException.ThrowIfNull(signature);
        var clock = Stopwatch.StartNew();
        var state = new Search(c, run, signature, cap, clock, cancellation);
        CaseResult original = run(c);
        state.Runs++;
        if (KeyOf(original) != signature)
        {
            return Finish(state, c, original, reproduced: false);
        }

        state.Best = original;
        var steps = new List<Step>(c.Steps);
        steps = state.DeltaDebug(steps);
        for (int pass = 0; pass < 8 && !state.OutOfTime; pass++)
        {
            bool changed = state.SimplifySteps(steps);
            changed |= state.Relocate(ref steps);
            // A simpler step can make another step unnecessary.
            int before = steps.Count;
            steps = state.DeltaDebug(steps);
            if (!changed && steps.Count == before)
            {
                break;
            }
        }

        return Finish(state, c with { Steps = [.. steps] }, state.Best, reproduced: true);
    }

    private static ReductionResult Finish(Search s, EptCase result, CaseResult run, bool reproduced) => new()
    {
        Case = result,
        Signature = s.Signature,
        Reproduced = reproduced,
        StepsBefore = s.Original.Steps.Length,
        StepsAfter = result.Steps.Length,
        Elapsed = s.Clock.Elapsed,
        Runs = s.Runs,
        TimedOut = s.OutOfTime,
        Result = run,
    };

    /// <summary>
    /// The size of a step, compared lexicographically: printed length first, then the total bit
    /// length plus the set bits of its numbers (so 1G → 2M, 0x1ff000 → 0x1000 and 0x3fe01238 →
    /// 0x3fe01000 count as smaller).
    /// </summary>
    public static (int Length, int Magnitude) Cost(Step step)
    {
        ArgumentNullException.ThrowIfNull(step);
        string text = CasePrinter.PrintStep(step);
        int magnitude = 0;
        foreach (ulong v in Numbers(step))
        {
            magnitude += 64 - BitOperations.LeadingZeroCount(v) + BitOperations.PopCount(v);
        }

        return (text.Length, magnitude);
    }

    /// <summary>The size of a whole case: the sums of <see cref="Cost"/>, compared the same way.</summary>
    private static bool Smaller(List<Step> candidate, List<Step> current)
    {
        (int la, int ma) = Total(candidate);
        (int lb, int mb) = Total(current);
        return la < lb || (la == lb && ma < mb);

        static (int, int) Total(List<Step> steps)
        {
            int length = 0, magnitude = 0;
            foreach (Step s in steps)
            {
                var c = Cost(s);
                length += c.Length;
                magnitude += c.Magnitude;
            }

            return (length, magnitude);
        }
    }

    private static bool Smaller(Step candidate, Step current)
    {
        var a = Cost(candidate);
        var b = Cost(current);
        return a.Length < b.Length || (a.Length == b.Length && a.Magnitude < b.Magnitude);
    }

    private static IEnumerable<ulong> Numbers(Step step)
    {
        switch (step)
        {
            case MapStep m:
                yield return m.Gpa.Value;
                yield return m.Hpa.Value;
                yield return m.Size;
                yield return (ulong)m.Permissions;
                break;
            case UnmapStep u:
                yield return u.Gpa.Value;
                yield return u.Size;
                break;
            case ProtectStep p:
                yield return p.Gpa.Value;
                yield return p.Size;
                yield return (ulong)p.Permissions;
                break;
            case RetypeStep r:
                yield return r.Gpa.Value;
                yield return r.Size;
                break;
            case SplitStep s:
                yield return s.Gpa.Value;
                break;
            case MergeStep m:
                yield return m.Gpa.Value;
                yield return m.Size;
                break;
            case EditStep e:
                yield return e.Gpa.Value;
                yield return e.Set ?? 0;
                yield return e.Clear ?? 0;
                yield return e.LeafHpa?.Value ?? 0;
                break;
            case PokeStep p:
                yield return p.Hpa.Value;
                yield return p.Value;
                break;
            case GMapStep g:
                yield return g.Gva.Value;
                yield return g.Gpa.Value;
                yield return g.Size;
                break;
            case GEditStep g:
                yield return g.Gva.Value;
                yield return g.Set ?? 0;
                yield return g.Clear ?? 0;
                break;
            case AccessStep a:
                yield return a.Gpa?.Value ?? a.Gva?.Value ?? 0;
                break;
            case EntryStep e:
                yield return e.Gpa.Value;
                break;
            case EptpStep e:
                yield return e.Raw ?? 0;
                break;
        }
    }

    private sealed class Search(EptCase original, Func<EptCase, CaseResult> run, string signature, TimeSpan cap, Stopwatch clock, CancellationToken cancellation)
    {
        public EptCase Original { get; } = original;

        public string Signature { get; } = signature;

        public Stopwatch Clock { get; } = clock;

        public int Runs { get; set; }

        public CaseResult Best { get; set; } = null!;

        public bool OutOfTime => Clock.Elapsed >= cap || cancellation.IsCancellationRequested;

        /// <summary>Does this candidate keep the failure? Invalid candidates are not run.</summary>
        public bool Keeps(List<Step> steps)
        {
            if (OutOfTime || steps.Count == 0 || !CaseShape.IsValid(steps))
            {
                return false;
            }

            Runs++;
            CaseResult r = run(Original with { Steps = [.. steps] });
            if (KeyOf(r) != Signature)
            {
                return false;
            }

            Best = r;
            return true;
        }

        /// <summary>Moves mapped regions to small canonical addresses in every step at once; true when any moved.</summary>
        public bool Relocate(ref List<Step> steps)
        {
            bool changed = false;
            for (int round = 0; round < 16 && !OutOfTime; round++)
            {
                List<Step>? taken = null;
                foreach (List<Step> candidate in AddressRelocation.Candidates(steps))
                {
                    // Moving several addresses together can break a rule the order check does not
                    // see (tables that contain cr3): check the candidate as a file would be checked.
                    if (Smaller(candidate, steps) && CaseValidator.Check(Original with { Steps = [.. candidate] }).Count == 0 && Keeps(candidate))
                    {
                        taken = candidate;
                        break;
                    }

                    if (OutOfTime)
                    {
                        break;
                    }
                }

                if (taken is null)
                {
                    break;
                }

                steps = taken;
                changed = true;
            }

            return changed;
        }

        /// <summary>ddmin over the steps, by complements (Zeller and Hildebrandt, 2002).</summary>
        public List<Step> DeltaDebug(List<Step> steps)
        {
            int n = 2;
            while (steps.Count >= 2 && !OutOfTime)
            {
                int chunk = (steps.Count + n - 1) / n;
                bool reduced = false;
                for (int start = 0; start < steps.Count && !OutOfTime; start += chunk)
                {
                    var complement = new List<Step>(steps.Count);
                    complement.AddRange(steps.Take(start));
                    complement.AddRange(steps.Skip(start + chunk));
                    if (Keeps(complement))
                    {
                        steps = complement;
                        n = Math.Max(n - 1, 2);
                        reduced = true;
                        break;
                    }
                }

                if (!reduced)
                {
                    if (n >= steps.Count)
                    {
                        break;
                    }

                    n = Math.Min(steps.Count, n * 2);
                }
            }

            return steps;
        }

        /// <summary>One pass over every step, taking the first simpler variant that keeps the failure; true when any changed.</summary>
        public bool SimplifySteps(List<Step> steps)
        {
            bool changed = false;
            for (int i = 0; i < steps.Count && !OutOfTime; i++)
            {
                bool again = true;
                for (int guard = 0; again && guard < 16; guard++)
                {
                    again = false;
                    foreach (Step candidate in StepSimplifiers.Variants(steps[i]))
                    {
                        if (!Smaller(candidate, steps[i]))
                        {
                            continue;
                        }

                        Step old = steps[i];
                        steps[i] = candidate;
                        if (Keeps(steps))
                        {
                            changed = again = true;
                            break;
                        }

                        steps[i] = old;
                    }
                }
            }

            return changed;
        }
    }
}
