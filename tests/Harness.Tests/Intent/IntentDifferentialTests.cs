using EptFuzz.Contract;
using EptFuzz.Harness.Cases;
using EptFuzz.Harness.Fuzzing;
using EptFuzz.Harness.Intent;

namespace EptFuzz.Harness.Tests.Intent;

/// <summary>
/// The run-based intent model must answer exactly as the page-by-page one did: same result for
/// every operation, same page at every address. Generated cases give the variety; the targeted
/// tests pin the places where runs are cut, split and joined.
/// </summary>
public sealed class IntentDifferentialTests
{
    private const EptPermissions Rwx = EptPermissions.ReadAccess | EptPermissions.WriteAccess | EptPermissions.ExecuteAccess;
    private const ulong K4 = 4096, M2 = 1UL << 21, G1 = 1UL << 30;

    private static readonly CpuCapabilities No2M = new() { Page2M = false, Page1G = true };

    [Theory]
    [InlineData(0x5eedUL, 0, 10_000)]
    [InlineData(0x1d7e47UL, 0, 10_000)]
    public void GeneratedCases_SameResultsAndPages(ulong seed, int from, int count)
    {
        for (int i = from; i < from + count; i++)
        {
            var @case = CaseGenerator.Generate(Prng.Derive(seed, (ulong)i), GeneratorProfile.Default);
            Replay(@case, new Prng(Prng.Derive(~seed, (ulong)i)), $"seed 0x{seed:x} case {i}");
        }
    }

    [Fact]
    public void OneGigInto4K_WithoutTwoMeg_OneRunAndSamePages()
    {
        var twin = new IntentTwin(No2M);
        Assert.Equal(ApiResult.Ok, twin.Map(G1, 3 * G1, G1, Rwx, MemoryType.WB, true));
        // Split goes one size down only, and there is no 2 MiB page.
        Assert.Equal(ApiResult.Unsupported, twin.Split(G1));
        // A range operation splits as far as it must: 262,144 pages of 4 KiB, one run around the change.
        Assert.Equal(ApiResult.Ok, twin.Protect(G1 + 0x1234_5000, K4, EptPermissions.ReadAccess));
        Assert.Equal(262_144, twin.Model.Count);
        Assert.Equal(3, twin.Model.Runs.Count);
        twin.LookupAround(G1 + 0x1234_5000, K4);
        twin.LookupAtRunEdges(new Prng(1));
        twin.LookupAround(G1, G1);
    }

    [Fact]
    public void ProtectMiddleOfRun_ThenMergeBack()
    {
        var twin = new IntentTwin(CpuCapabilities.Default);
        Assert.Equal(ApiResult.Ok, twin.Map(0x4000_0000, 0x8000_0000, G1, Rwx, MemoryType.WB, false));
        Assert.Equal(ApiResult.Ok, twin.Split(0x4000_0000));
        Assert.Equal(ApiResult.Ok, twin.Split(0x4020_0000));
        Assert.Equal(ApiResult.Ok, twin.Protect(0x4020_3000, 2 * K4, EptPermissions.ReadAccess));
        twin.LookupAtRunEdges(new Prng(2));
        Assert.Equal(ApiResult.NotMergeable, twin.Merge(0x4020_0000, M2));
        Assert.Equal(ApiResult.Ok, twin.Protect(0x4020_3000, 2 * K4, Rwx));
        // The pieces of the run are contiguous again, so they merge though they are several runs.
        Assert.Equal(ApiResult.Ok, twin.Merge(0x4020_0000, M2));
        Assert.Equal(ApiResult.Ok, twin.Merge(0x4000_0000, G1));
        Assert.Equal(1, twin.Model.Count);
        twin.LookupAround(0x4000_0000, G1);
        twin.SamePages(1);
    }

    [Fact]
    public void MergeOfRangeInsideALargerPage_NotMergeable()
    {
        var twin = new IntentTwin(CpuCapabilities.Default);
        Assert.Equal(ApiResult.Ok, twin.Map(0, 0, G1, Rwx, MemoryType.WB, false));
        Assert.Equal(ApiResult.NotMergeable, twin.Merge(M2, M2));
        Assert.Equal(ApiResult.Ok, twin.Split(0));
        Assert.Equal(ApiResult.Ok, twin.Unmap(0x3fe0_0000, M2));
        Assert.Equal(ApiResult.NotMergeable, twin.Merge(0, G1));
        Assert.Equal(ApiResult.NotExist, twin.Merge(0x3fe0_0000 + 0x4000_0000, M2));
    }

    [Theory]
    [InlineData(0x20_0000UL, ApiResult.Ok)]
    [InlineData(0x20_1000UL, ApiResult.NotMergeable)]
    public void MergeOf512SeparatelyMappedPages_NeedsAnAlignedHost(ulong hpa, ApiResult expected)
    {
        var twin = new IntentTwin(CpuCapabilities.Default);
        for (ulong i = 0; i < 512; i++)
        {
            Assert.Equal(ApiResult.Ok, twin.Map(0x40_0000 + i * K4, hpa + i * K4, K4, Rwx, MemoryType.WB, false));
        }

        Assert.Equal(expected, twin.Merge(0x40_0000, M2));
        twin.LookupAtRunEdges(new Prng(6));
    }

    [Fact]
    public void UnmapPartOfRun_KeepsBothSides()
    {
        var twin = new IntentTwin(CpuCapabilities.Default);
        Assert.Equal(ApiResult.Ok, twin.Map(0, 0x1_0000_0000, G1, Rwx, MemoryType.WT, true));
        Assert.Equal(ApiResult.Ok, twin.Split(0));
        Assert.Equal(ApiResult.Ok, twin.Unmap(0x60_1000, 3 * M2));
        Assert.Equal(ApiResult.NotExist, twin.Unmap(0x60_0000, 3 * M2));
        Assert.Equal(ApiResult.Ok, twin.Retype(0x40_0000, 0x20_1000, MemoryType.UC, false));
        twin.LookupAtRunEdges(new Prng(3));
        twin.SamePages(4096);
    }

    [Fact]
    public void IdentityMapWithUnalignedOffset_4KRunsAndSamePages()
    {
        var twin = new IntentTwin(CpuCapabilities.Default);
        Assert.Equal(ApiResult.Ok, twin.AddMemoryRange(0, 0xA_0000, MemoryType.WB));
        Assert.Equal(ApiResult.Ok, twin.AddMemoryRange(0xA_0000, 0x10_0000, MemoryType.UC));
        Assert.Equal(ApiResult.Ok, twin.AddMemoryRange(0x10_0000, 0x4000_0000, MemoryType.WB));
        // From 0x30_0000 on the host addresses are 4 KiB off any larger alignment: 4 KiB pages only.
        Assert.Equal(ApiResult.Ok, twin.IdentityMap(0x1000, 0x30_0000));
        Assert.True(twin.Model.Runs.Count < 10, $"{twin.Model.Runs.Count} runs");
        twin.LookupAtRunEdges(new Prng(4));
        Assert.Equal(ApiResult.Duplicated, twin.IdentityMap(0, 0));
    }

    [Fact]
    public void IdentityMapPastTheHostLimit_OutOfRange()
    {
        var twin = new IntentTwin(new CpuCapabilities { MaxPhyAddr = 36 });
        // The last gigabyte below the 64 GiB host limit: shifted by a page, the last page ends past it.
        Assert.Equal(ApiResult.Ok, twin.AddMemoryRange(0xF_C000_0000, 0x10_0000_0000, MemoryType.WB));
        Assert.Equal(ApiResult.OutOfRange, twin.IdentityMap(0x1000, 0));
        Assert.Equal(ApiResult.Ok, twin.IdentityMap(0, 0));
        twin.LookupAtRunEdges(new Prng(5));
    }

    [Theory]
    [InlineData(0x1F_F000UL, 0x20_0000UL)]
    [InlineData(0x1F_E000UL, 0x20_0000UL)]
    [InlineData(0x1F_F000UL, 0x20_1000UL)]
    public void IdentityMapWhoseHostAddressesWrap_SameAsPages(ulong offsetFrom, ulong end)
    {
        // HPA = GPA + 2^64 - 2 MiB: the page below 2 MiB ends at 2^64 exactly, the ones above wrap.
        var twin = new IntentTwin(CpuCapabilities.Default);
        Assert.Equal(ApiResult.Ok, twin.AddMemoryRange(0x10_0000, end, MemoryType.WB));
        twin.IdentityMap(unchecked(0 - M2), offsetFrom);
        twin.LookupAtRunEdges(new Prng(7));
        twin.SamePages(4096);
    }

    /// <summary>
    /// Does with the intent what the runner does for each step, as if the hypervisor had accepted it
    /// (the answers are compared either way), and looks up around every change. Like the runner, it
    /// stops asking once everything is unknown, except for memory ranges.
    /// </summary>
    private static void Replay(EptCase @case, Prng rng, string name)
    {
        var cpu = @case.Steps.Length > 0 && @case.Steps[0] is CpuStep c ? c.ToCapabilities() : CpuCapabilities.Default;
        var twin = new IntentTwin(cpu);
        for (int k = 0; k < @case.Steps.Length; k++)
        {
            var step = @case.Steps[k];
            twin.Where = $"{name} step {k} ({step.Verb})";
            if (twin.Model.AllUnknown && step is not MemoryStep)
            {
                continue;
            }

            switch (step)
            {
                case EptpStep e when e.Raw is null:
                    twin.SetWalkLength(e.WalkLength ?? 4);
                    break;
                case EptpStep:
                case PokeStep:
                    twin.MarkAllUnknown();
                    break;
                case EditStep e:
                    ulong span = 1UL << (12 + 9 * ((int)e.Level - 1));
                    ulong start = e.Gpa.Value & ~(span - 1);
                    twin.MarkUnknown(start, start + span);
                    break;
                case MapStep m:
                    twin.Map(m.Gpa.Value, m.Hpa.Value, m.Size, m.Permissions, m.EffectiveMemoryType, m.IgnorePat ?? false);
                    break;
                case UnmapStep u:
                    twin.Unmap(u.Gpa.Value, u.Size);
                    break;
                case ProtectStep p:
                    twin.Protect(p.Gpa.Value, p.Size, p.Permissions);
                    break;
                case RetypeStep r:
                    twin.Retype(r.Gpa.Value, r.Size, r.MemoryType, r.IgnorePat ?? false);
                    break;
                case SplitStep s:
                    twin.Split(s.Gpa.Value);
                    break;
                case MergeStep m:
                    twin.Merge(m.Gpa.Value, m.Size);
                    break;
                case MemoryStep m:
                    twin.AddMemoryRange(m.Start.Value, m.End.Value, m.MemoryType);
                    break;
                case IdentityMapStep im:
                    twin.IdentityMap(im.Offset ?? 0, (im.OffsetFrom ?? default).Value);
                    break;
                case AccessStep { Gpa: { } gpa }:
                    twin.LookupAt(gpa.Value);
                    break;
            }

            if (IntentModel.RangeOf(step) is var (from, to))
            {
                twin.ForgetIfUnknown(from, to);
                twin.LookupAround(from, to - from);
                twin.LookupAtRunEdges(rng);
            }
        }

        twin.SamePages(4096);
    }
}
