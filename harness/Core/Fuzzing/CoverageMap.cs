using System.Numerics;
using EptFuzz.Contract;
using EptFuzz.Harness.Cases;
using EptFuzz.Harness.Running;

namespace EptFuzz.Harness.Fuzzing;

/// <summary>
/// The fuzzer's feedback map, in place of edge coverage: one bitmap over four feature spaces,
///   rules       the reference model's rule ids (<see cref="Observation.Rules"/>), 256 exact bits;
///   pairs       consecutive rule ids in the case's rule sequence (each probe's rules in ascending
///               order, probes in case order), 256 x 256 exact bits;
///   transitions an EPT entry's state before and after (keyed by the leaf entry's host address:
///               its permission, large-page, memory-type and A/D bits with the probe's outcome),
///               hashed into 2^16 bits;
///   outcomes    what each step produced (operation verb x result, probe verb x outcome x page
///               size x qualification bits), hashed into 2^16 bits, so that targets without rule
///               ids still guide.
/// A case is kept when it sets a bit nobody set before. As an <see cref="IRunObserver"/> it
/// collects the current case's features; <see cref="EndCase"/> commits them.
/// </summary>
/// <remarks>
/// Not thread-safe as an observer (one per worker); <see cref="Absorb"/> and the read-only
/// properties are safe to call from several threads, so one shared map can be the union.
/// </remarks>
public sealed class CoverageMap : IRunObserver
{
    public const int RuleSpace = RuleBits.Capacity;
    public const int PairSpace = RuleBits.Capacity * RuleBits.Capacity;
    public const int HashSpace = 1 << 16;

    private const int PairBase = RuleSpace;
    private const int TransitionBase = PairBase + PairSpace;
    private const int OutcomeBase = TransitionBase + HashSpace;
    private const int TotalBits = OutcomeBase + HashSpace;

    private readonly ulong[] bits = new ulong[TotalBits / 64];
    private readonly object gate = new();
    private readonly List<int> pending = new(256);
    private readonly Dictionary<ulong, ushort> entryStates = new();
    private int lastRule = -1;
    private int rulesHit;
    private int featuresHit;

    /// <param name="ruleNames">The rule ids of the target that fills <see cref="Observation.Rules"/> (the model).</param>
    /// <param name="rulesModelled">How many rules that target models; defaults to the number of names.</param>
    public CoverageMap(IReadOnlyList<string>? ruleNames = null, int? rulesModelled = null)
    {
        RuleNames = ruleNames ?? [];
        RulesModelled = rulesModelled ?? RuleNames.Count;
    }

    public IReadOnlyList<string> RuleNames { get; }

    /// <summary>Rule ids the model reports (its <see cref="ITarget.RuleNames"/> count unless told otherwise).</summary>
    public int RulesModelled { get; }

    public int RulesHit => Volatile.Read(ref rulesHit);

    /// <summary>Every bit set in all four spaces.</summary>
    public int Features => Volatile.Read(ref featuresHit);

    /// <summary>The features of the case being run (valid until <see cref="BeginCase"/>).</summary>
    public IReadOnlyList<int> CaseFeatures => pending;

    /// <summary>"rules hit / rules modelled", as the status line and the report print it.</summary>
    public string RulesText => $"{RulesHit}/{RulesModelled}";

    public RuleBits Rules
    {
        get
        {
            lock (gate)
            {
                return new RuleBits(bits[0], bits[1], bits[2], bits[3]);
            }
        }
    }

    /// <summary>Names of the rules hit so far (indices without a name are written as <c>rule#N</c>).</summary>
    public IReadOnlyList<string> RuleNamesHit() =>
        [.. Rules.Indices().Select(i => i < RuleNames.Count ? RuleNames[i] : $"rule#{i}")];

    public void BeginCase()
    {
        pending.Clear();
        entryStates.Clear();
        lastRule = -1;
    }

    /// <summary>Commits the current case's features to this map; returns how many were new.</summary>
    public int EndCase() => Absorb(pending);

    /// <summary>Sets these features (e.g. another worker's case); returns how many were new. Thread-safe.</summary>
    public int Absorb(IReadOnlyList<int> features)
    {
        ArgumentNullException.ThrowIfNull(features);
        lock (gate)
        {
            int fresh = 0;
            for (int i = 0; i < features.Count; i++)
            {
                int f = features[i];
                ulong mask = 1UL << (f & 63);
                ref ulong word = ref bits[f >> 6];
                if ((word & mask) == 0)
                {
                    word |= mask;
                    fresh++;
                    if (f < RuleSpace)
                    {
                        rulesHit++;
                    }
                }
            }

            featuresHit += fresh;
            return fresh;
        }
    }

    /// <summary>Copies every bit of <paramref name="other"/> into this map.</summary>
    public int UnionWith(CoverageMap other)
    {
        ArgumentNullException.ThrowIfNull(other);
        var set = new List<int>();
        lock (other.gate)
        {
            for (int w = 0; w < other.bits.Length; w++)
            {
                ulong word = other.bits[w];
                while (word != 0)
                {
                    int b = BitOperations.TrailingZeroCount(word);
                    set.Add((w << 6) | b);
                    word &= word - 1;
                }
            }
        }

        return Absorb(set);
    }

    public void OnOperation(int stepIndex, Step step, ApiResult result) =>
        pending.Add(OutcomeBase + (int)(Mix((ulong)VerbCode(step), (ulong)result) & (HashSpace - 1)));

    public void OnProbe(int stepIndex, Step step, Observation baseline)
    {
        RuleBits r = baseline.Rules;
        if (!r.IsEmpty)
        {
            AddRules(r.W0, 0);
            AddRules(r.W1, 64);
            AddRules(r.W2, 128);
            AddRules(r.W3, 192);
        }

        ulong outcome = ((ulong)baseline.Kind << 8) | ((ulong)baseline.PageSize << 4) | (uint)VerbCode(step);
        if (baseline.Kind == OutcomeKind.EptViolation)
        {
            outcome |= (baseline.Qualification & 0x1FF) << 16;
        }
        else if (baseline.Kind == OutcomeKind.GuestPageFault)
        {
            outcome |= (ulong)baseline.ErrorCode << 16;
        }

        pending.Add(OutcomeBase + (int)(Mix(outcome, 0x7072) & (HashSpace - 1)));

        // The state of the entry this probe ended on, keyed by where it lives.
        var walk = baseline.Walk;
        if (walk.Count > 0)
        {
            WalkEntry leaf = walk[^1];
            ushort state = (ushort)(Mix((leaf.Value & 0x3FF) | ((leaf.Value >> 63) << 10) | ((ulong)leaf.Level << 11) | ((ulong)baseline.Kind << 14), 0x5754) & 0xFFFF);
            ulong key = leaf.Address.Value;
            ushort before = entryStates.TryGetValue(key, out ushort s) ? s : (ushort)0xFFFF;
            if (before != state)
            {
                entryStates[key] = state;
                pending.Add(TransitionBase + (int)(Mix(before, state) & (HashSpace - 1)));
            }
        }
    }

    private void AddRules(ulong word, int offset)
    {
        while (word != 0)
        {
            int rule = offset + BitOperations.TrailingZeroCount(word);
            word &= word - 1;
            pending.Add(rule);
            if (lastRule >= 0)
            {
                pending.Add(PairBase + (lastRule * RuleSpace) + rule);
            }

            lastRule = rule;
        }
    }

    /// <summary>A small stable code per step shape (verb, and gpa/gva/cpl for accesses).</summary>
    private static int VerbCode(Step step) => step switch
    {
        AccessStep a => 1 + ((int)a.Kind * 4) + (a.Gva is null ? 0 : a.Cpl == 3 ? 2 : 1),
        EntryStep e => 13 + (int)e.Level,
        VmEntryStep => 19,
        CpuStep => 20,
        EptpStep e => e.Raw is null ? 21 : 22,
        ControlsStep => 23,
        GuestStep => 24,
        MapStep m => 25 + (int)(BitOperations.TrailingZeroCount(m.Size | (1UL << 40)) & 63),
        UnmapStep => 90,
        ProtectStep => 91,
        RetypeStep => 92,
        SplitStep => 93,
        MergeStep => 94,
        MemoryStep => 95,
        IdentityMapStep => 96,
        InveptStep => 97,
        EditStep e => 98 + (int)e.Level,
        PokeStep => 104,
        GMapStep => 105,
        GEditStep => 106,
        _ => 0,
    };

    private static ulong Mix(ulong a, ulong b)
    {
        ulong x = (a * 0x9E3779B97F4A7C15UL) ^ (b + 0x632BE59BD9B4E019UL);
        return Prng.SplitMix64(ref x);
    }
}
