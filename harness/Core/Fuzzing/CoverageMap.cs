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
///   classes     <see cref="ValueClasses"/>: which value class each step's fields and each
///               access's state fell in, 1024 exact bits (a table lookup is not a branch, so
///               code coverage cannot see these);
///   code        the implementation's edge coverage (SharpFuzz's trace map, hit counts bucketed
///               as AFL does), added by <see cref="AddCodeEdges"/>, 2^16 x 8 bits.
/// <see cref="CoverageKinds"/> chooses which spaces a campaign uses as feedback; value classes
/// are always counted (for the report) even when they do not guide.
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
    public const int ClassSpace = 1024;
    public const int CodeEdges = 1 << 16;

    private const int ClassBase = OutcomeBase + HashSpace;
    private const int CodeBase = ClassBase + ClassSpace;
    private const int TotalBits = CodeBase + (CodeEdges * 8);

    private readonly ulong[] bits = new ulong[TotalBits / 64];
    private readonly object gate = new();
    private readonly List<int> pending = new(256);
    private readonly Dictionary<ulong, ushort> entryStates = new();
    private int lastRule = -1;
    private int rulesHit;
    private int featuresHit;
    private int classesHit;
    private int codeHit;
    private readonly ValueClassifier classifier = new();
    private readonly long[] classCounts = new long[ValueClasses.Count];

    /// <param name="ruleNames">The rule ids of the target that fills <see cref="Observation.Rules"/> (the model).</param>
    /// <param name="rulesModelled">How many rules that target models; defaults to the number of names.</param>
    /// <param name="kinds">The feature spaces that guide (value classes are counted either way).</param>
    public CoverageMap(IReadOnlyList<string>? ruleNames = null, int? rulesModelled = null, CoverageKinds kinds = CoverageKinds.Default)
    {
        if (ValueClasses.Count > ClassSpace)
        {
            throw new InvalidOperationException($"{ValueClasses.Count} value classes do not fit the map's {ClassSpace} bits");
        }

        RuleNames = ruleNames ?? [];
        RulesModelled = rulesModelled ?? RuleNames.Count;
        Kinds = kinds;
    }

    public CoverageKinds Kinds { get; }

    /// <summary>Value classes hit so far (of <see cref="ValueClasses.Count"/>).</summary>
    public int ClassesHit => Volatile.Read(ref classesHit);

    /// <summary>Code-coverage features (edge x hit-count bucket) hit so far.</summary>
    public int CodeFeatures => Volatile.Read(ref codeHit);

    /// <summary>How many of this map's cases hit each value class (a worker's own map counts its cases).</summary>
    public long ClassCount(int index) => Interlocked.Read(ref classCounts[index]);

    /// <summary>True when class <paramref name="index"/> is set in this map.</summary>
    public bool HasClass(int index)
    {
        int f = ClassBase + index;
        lock (gate)
        {
            return (bits[f >> 6] & (1UL << (f & 63))) != 0;
        }
    }

    /// <summary>Code edges (distinct trace-map indices, any bucket) hit so far.</summary>
    public int CodeEdgesHit()
    {
        int n = 0;
        lock (gate)
        {
            for (int e = 0; e < CodeEdges; e += 8)
            {
                // Eight edges' eight buckets are one 64-bit word.
                ulong word = bits[(CodeBase >> 6) + (e >> 3)];
                for (int k = 0; k < 8; k++)
                {
                    if (((word >> (k * 8)) & 0xFF) != 0)
                    {
                        n++;
                    }
                }
            }
        }

        return n;
    }

    /// <summary>The trace-map indices hit so far (for the report).</summary>
    public IReadOnlyList<int> CodeEdgeIndices()
    {
        var list = new List<int>();
        lock (gate)
        {
            for (int e = 0; e < CodeEdges; e++)
            {
                int f = CodeBase + (e * 8);
                if (((bits[f >> 6] >> (f & 63)) & 0xFF) != 0)
                {
                    list.Add(e);
                }
            }
        }

        return list;
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
        classifier.Reset();
        pending.Clear();
        entryStates.Clear();
        lastRule = -1;
    }

    /// <summary>Starts a case and classifies its steps' fields into value classes.</summary>
    public void BeginCase(EptCase c)
    {
        pending.Clear();
        entryStates.Clear();
        lastRule = -1;
        classifier.Begin(c);
    }

    /// <summary>Commits the current case's features to this map; returns how many were new.</summary>
    public int EndCase()
    {
        IReadOnlyList<int> classes = classifier.Hits;
        for (int i = 0; i < classes.Count; i++)
        {
            int c = classes[i];
            classCounts[c]++;
            pending.Add(ClassBase + c);
        }

        return Absorb(pending);
    }

    /// <summary>
    /// Adds the case's code coverage: <paramref name="trace"/> is the trace map (one hit counter
    /// per edge, saturating at 255), each non-zero counter bucketed as AFL does (1, 2, 3, 4-7,
    /// 8-15, 16-31, 32-127, 128+).
    /// </summary>
    public void AddCodeEdges(ReadOnlySpan<byte> trace)
    {
        int n = Math.Min(trace.Length, CodeEdges);
        for (int e = 0; e < n; e++)
        {
            byte count = trace[e];
            if (count != 0)
            {
                pending.Add(CodeBase + (e * 8) + Bucket(count));
            }
        }
    }

    /// <summary>AFL's hit-count classes.</summary>
    public static int Bucket(byte count) => count switch
    {
        1 => 0,
        2 => 1,
        3 => 2,
        < 8 => 3,
        < 16 => 4,
        < 32 => 5,
        < 128 => 6,
        _ => 7,
    };

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
                    if (f < RuleSpace)
                    {
                        rulesHit++;
                    }
                    else if (f >= ClassBase && f < CodeBase)
                    {
                        classesHit++;
                    }
                    else if (f >= CodeBase)
                    {
                        codeHit++;
                    }

                    if (Guides(f))
                    {
                        fresh++;
                    }
                }
            }

            featuresHit += fresh;
            return fresh;
        }
    }

    /// <summary>Whether feature <paramref name="f"/> belongs to a space this map is guided by.</summary>
    private bool Guides(int f) => f < ClassBase
        ? (Kinds & CoverageKinds.Rules) != 0
        : f < CodeBase
            ? (Kinds & CoverageKinds.Classes) != 0
            : (Kinds & CoverageKinds.Code) != 0;

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

    public void OnOperation(int stepIndex, Step step, ApiResult result)
    {
        classifier.Operation(step, result);
        pending.Add(OutcomeBase + (int)(Mix((ulong)VerbCode(step), (ulong)result) & (HashSpace - 1)));
    }

    public void OnProbe(int stepIndex, Step step, Observation baseline)
    {
        classifier.Probe(step, baseline);
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
