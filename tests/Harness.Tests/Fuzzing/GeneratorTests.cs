using System.Text;
using EptFuzz.Harness.Cases;
using EptFuzz.Harness.Fuzzing;
using EptFuzz.Harness.Running;
using EptFuzz.Harness.Tests.Fuzzing.Support;

namespace EptFuzz.Harness.Tests.Fuzzing;

public class GeneratorTests
{
    public static TheoryData<CpuProfile> Profiles => [CpuProfile.Random, CpuProfile.Default, CpuProfile.Full, CpuProfile.Minimal];

    [Fact]
    public void Prng_SameSeed_SameSequence_DifferentSeeds_Differ()
    {
        var a = new Prng(42);
        var b = new Prng(42);
        var c = new Prng(43);
        var sa = Enumerable.Range(0, 100).Select(_ => a.NextU64()).ToArray();
        var sb = Enumerable.Range(0, 100).Select(_ => b.NextU64()).ToArray();
        var sc = Enumerable.Range(0, 100).Select(_ => c.NextU64()).ToArray();
        Assert.Equal(sa, sb);
        Assert.NotEqual(sa, sc);
    }

    [Fact]
    public void Prng_MatchesTheReferenceSplitMix64AndXoshiro256StarStar()
    {
        // SplitMix64 from state 0 (Vigna's splitmix64.c): first output 0xe220a8397b1dcdaf.
        ulong x = 0;
        Assert.Equal(0xe220a8397b1dcdafUL, Prng.SplitMix64(ref x));
        // xoshiro256** seeded with those four SplitMix64 outputs: the first output is
        // rotl(s1 * 5, 7) * 9 by definition; recompute it independently.
        ulong y = 0;
        Prng.SplitMix64(ref y);
        ulong s1 = Prng.SplitMix64(ref y);
        ulong expected = (((s1 * 5) << 7) | ((s1 * 5) >> 57)) * 9;
        Assert.Equal(expected, new Prng(0).NextU64());
    }

    [Fact]
    public void Prng_Below_StaysInBounds_AndReachesEveryValue()
    {
        var rng = new Prng(7);
        var seen = new bool[7];
        for (int i = 0; i < 1000; i++)
        {
            int v = rng.Below(7);
            Assert.InRange(v, 0, 6);
            seen[v] = true;
        }

        Assert.All(seen, Assert.True);
    }

    [Theory]
    [MemberData(nameof(Profiles))]
    public void SameSeed_GeneratesIdenticalBytes(CpuProfile cpu)
    {
        var profile = new GeneratorProfile { Cpu = cpu };
        for (ulong seed = 0; seed < 50; seed++)
        {
            string first = CasePrinter.Print(CaseGenerator.Generate(seed, profile));
            string second = CasePrinter.Print(CaseGenerator.Generate(seed, profile));
            Assert.Equal(first, second);
        }
    }

    [Fact]
    public void DifferentSeeds_GenerateDifferentCases()
    {
        var texts = Enumerable.Range(0, 200).Select(s => CasePrinter.Print(CaseGenerator.Generate((ulong)s, GeneratorProfile.Default))).ToHashSet();
        Assert.Equal(200, texts.Count);
    }

    [Fact]
    public void Seed_RegeneratesTheSameBytesOnAnyMachine()
    {
        // A golden digest of generator version 2: if this changes, the same seed no longer
        // regenerates a recorded finding, so bump CaseGenerator.Version and update the digest.
        var sb = new StringBuilder();
        foreach (CpuProfile cpu in Enum.GetValues<CpuProfile>())
        {
            for (ulong seed = 0; seed < 50; seed++)
            {
                sb.Append(CasePrinter.Print(CaseGenerator.Generate(seed, new GeneratorProfile { Cpu = cpu })));
            }
        }

        Assert.Equal(2, CaseGenerator.Version);
        Assert.Equal(GoldenDigest, Fnv1a64(sb.ToString()));
    }

    private const string GoldenDigest = "d02a7cfc8a0f6753";

    [Theory]
    [MemberData(nameof(Profiles))]
    public void GeneratedCases_AreValidVersion1Text_OfTheRequestedLength(CpuProfile cpu)
    {
        var profile = new GeneratorProfile { Cpu = cpu, Steps = 48 };
        for (ulong seed = 0; seed < 150; seed++)
        {
            EptCase c = CaseGenerator.Generate(seed, profile);
            Assert.Equal(48, c.Steps.Length);
            var errors = CaseValidator.Check(c);
            Assert.True(errors.Count == 0, $"seed {seed}: {string.Join("; ", errors)}\n{CasePrinter.Print(c)}");
            var reparsed = CaseParser.Parse(CasePrinter.Print(c), "x.ept");
            Assert.True(reparsed.Succeeded, reparsed.ErrorText());
        }
    }

    [Fact]
    public void GeneratedCases_Run_WithoutBeingRefused()
    {
        var options = TestTargets.Options();
        var statuses = new Dictionary<CaseStatus, int>();
        for (ulong seed = 0; seed < 200; seed++)
        {
            var result = CaseRunner.Run(CaseGenerator.Generate(seed, GeneratorProfile.Default), options);
            Assert.True(result.Status != CaseStatus.BadInput, $"seed {seed}: {result.Message}");
            statuses[result.Status] = statuses.GetValueOrDefault(result.Status) + 1;
        }

        Assert.Equal(200, statuses.GetValueOrDefault(CaseStatus.Passed));
    }

    [Fact]
    public void GeneratedCases_ReachTheEdgesTheyAreBiasedTo()
    {
        int edge511 = 0, guest = 0, raw = 0, walk5 = 0, maxPhyEdge = 0;
        for (ulong seed = 0; seed < 300; seed++)
        {
            EptCase c = CaseGenerator.Generate(seed, GeneratorProfile.Default);
            int maxPhy = (c.Steps[0] as CpuStep)?.MaxPhyAddr ?? 46;
            foreach (Step s in c.Steps)
            {
                switch (s)
                {
                    case MapStep m when ((m.Gpa.Value >> 21) & 511) == 511 || ((m.Gpa.Value >> 12) & 511) == 511:
                        edge511++;
                        break;
                    case MapStep m when m.Gpa.Value + m.Size == 1UL << maxPhy:
                        maxPhyEdge++;
                        break;
                    case GMapStep:
                        guest++;
                        break;
                    case EditStep:
                        raw++;
                        break;
                    case EptpStep { WalkLength: 5 }:
                        walk5++;
                        break;
                }
            }
        }

        Assert.True(edge511 > 50, $"index-511 maps: {edge511}");
        Assert.True(guest > 50, $"gmaps: {guest}");
        Assert.True(raw > 50, $"edits: {raw}");
        Assert.True(walk5 > 20, $"5-level walks: {walk5}");
        Assert.True(maxPhyEdge > 5, $"maps ending at MAXPHYADDR: {maxPhyEdge}");
    }

    internal static string Fnv1a64(string text)
    {
        ulong h = 14695981039346656037UL;
        foreach (byte b in Encoding.UTF8.GetBytes(text))
        {
            h = (h ^ b) * 1099511628211UL;
        }

        return h.ToString("x16", System.Globalization.CultureInfo.InvariantCulture);
    }
}
