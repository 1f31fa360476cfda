using EptFuzz.Contract;
using EptFuzz.Impl.Ept;
using static EptFuzz.Impl.Tests.Rig;

namespace EptFuzz.Impl.Tests;

/// <summary>KeOS-style behaviour of the EPT API: results, precedence, and failed operations that change nothing.</summary>
public sealed class ApiBehaviourTests
{
    [Fact]
    public void MapTwice_Duplicated()
    {
        var rig = new Rig();
        rig.Map(0x200000, 0x40200000, M2);
        Assert.Equal(ApiResult.Duplicated, rig.Do(h => h.Map(new Gpa(0x200000), new Hpa(0x1000), K4, Rwx, MemoryType.WB, false)));
        Assert.Equal(ApiResult.Duplicated, rig.Do(h => h.Map(new Gpa(0x201000), new Hpa(0x1000), K4, Rwx, MemoryType.WB, false)));
        // A 1 GiB page over a table that holds a 2 MiB page overlaps it too.
        Assert.Equal(ApiResult.Duplicated, rig.Do(h => h.Map(new Gpa(0), new Hpa(0), G1, Rwx, MemoryType.WB, false)));
        Assert.Empty(rig.LastEffects);
    }

    [Theory]
    [InlineData(0x1001UL, 0x2000UL, 4096UL)]
    [InlineData(0x1000UL, 0x2800UL, 4096UL)]
    [InlineData(0x201000UL, 0x400000UL, 2097152UL)]
    [InlineData(0x200000UL, 0x401000UL, 2097152UL)]
    [InlineData(0x40000000UL, 0x20000000UL, 1073741824UL)]
    public void MisalignedAddresses_Unaligned(ulong gpa, ulong hpa, ulong size)
    {
        var rig = new Rig();
        Assert.Equal(ApiResult.Unaligned, rig.Do(h => h.Map(new Gpa(gpa), new Hpa(hpa), size, Rwx, MemoryType.WB, false)));
    }

    [Fact]
    public void UnmapOfNothing_NotExist()
    {
        var rig = new Rig();
        Assert.Equal(ApiResult.NotExist, rig.Do(h => h.Unmap(new Gpa(0x5000), K4)));
        rig.Map(0x5000, 0x9000, K4);
        // One page of the range is missing: nothing is removed.
        Assert.Equal(ApiResult.NotExist, rig.Do(h => h.Unmap(new Gpa(0x5000), 2 * K4)));
        Assert.True(rig.Hypervisor.Ept.TryTranslate(new Gpa(0x5123), out Hpa hpa));
        Assert.Equal(0x9123UL, hpa.Value);
        Assert.Equal(ApiResult.NotExist, rig.Do(h => h.Protect(new Gpa(0x7000), K4, EptPermissions.ReadAccess)));
        Assert.Equal(ApiResult.NotExist, rig.Hypervisor.Ept.Walk(new Gpa(0x6000), out _));
        Assert.Equal(ApiResult.OutOfRange, rig.Hypervisor.Ept.Walk(new Gpa(1UL << 48), out _));
        Assert.Equal(ApiResult.Ok, rig.Hypervisor.Ept.Walk(new Gpa(0x5000), out EptLeaf leaf));
        Assert.Equal(EptLevel.Pte, leaf.Level);
        Assert.Equal(ApiResult.NotExist, rig.Do(h => h.Split(new Gpa(0x5000))));
        Assert.Equal(ApiResult.NotExist, rig.Do(h => h.Merge(new Gpa(0x40000000), M2)));
    }

    [Fact]
    public void Ranges_OutOfRange()
    {
        var rig = new Rig(CpuCapabilities.Default with { MaxPhyAddr = 39 });
        Assert.Equal(ApiResult.OutOfRange, rig.Do(h => h.Map(new Gpa(1UL << 48), new Hpa(0), K4, Rwx, MemoryType.WB, false)));
        Assert.Equal(ApiResult.OutOfRange, rig.Do(h => h.Map(new Gpa(0), new Hpa(1UL << 39), K4, Rwx, MemoryType.WB, false)));
        Assert.Equal(ApiResult.OutOfRange, rig.Do(h => h.Unmap(new Gpa((1UL << 48) - K4), 2 * K4)));
    }

    [Fact]
    public void FiveLevelWalk_ReachesAbove256TiB()
    {
        var rig = new Rig(CpuCapabilities.Default with { Walk5 = true, MaxPhyAddr = 52 }, new EptpRequest { WalkLength = 5 });
        ulong gpa = (1UL << 50) | 0x3000;
        rig.Map(gpa, 0x7000, K4);
        Observation read = rig.Probe(AccessKind.Read, gpa + 8);
        Assert.Equal(OutcomeKind.Translated, read.Kind);
        Assert.Equal(0x7008UL, read.Hpa.Value);
        Assert.Equal(5, read.Walk.Count);
        Assert.Equal(ApiResult.OutOfRange, rig.Do(h => h.Map(new Gpa(1UL << 52), new Hpa(0), K4, Rwx, MemoryType.WB, false)));
    }

    [Fact]
    public void Precedence_FirstInOrderWins()
    {
        var rig = new Rig(CpuCapabilities.Default with { Page1G = false, ExecuteOnly = false });
        rig.Map(0x1000, 0x1000, K4);
        // Unsupported (1G) beats Unaligned, OutOfRange and InvalidPermission.
        Assert.Equal(ApiResult.Unsupported, rig.Do(h => h.Map(new Gpa((1UL << 48) + 1), new Hpa(3), G1, EptPermissions.WriteAccess, MemoryType.WB, false)));
        // Unaligned beats OutOfRange and InvalidPermission.
        Assert.Equal(ApiResult.Unaligned, rig.Do(h => h.Map(new Gpa((1UL << 48) + 1), new Hpa(0), K4, EptPermissions.WriteAccess, MemoryType.WB, false)));
        // OutOfRange beats InvalidPermission.
        Assert.Equal(ApiResult.OutOfRange, rig.Do(h => h.Map(new Gpa(1UL << 48), new Hpa(0), K4, EptPermissions.WriteAccess, MemoryType.WB, false)));
        // InvalidPermission beats Duplicated.
        Assert.Equal(ApiResult.InvalidPermission, rig.Do(h => h.Map(new Gpa(0x1000), new Hpa(0), K4, EptPermissions.ExecuteAccess, MemoryType.WB, false)));
        Assert.Equal(ApiResult.InvalidPermission, rig.Do(h => h.Map(new Gpa(0x1000), new Hpa(0), K4, EptPermissions.ReadAccess, (MemoryType)2, false)));
        Assert.Equal(ApiResult.Duplicated, rig.Do(h => h.Map(new Gpa(0x1000), new Hpa(0), K4, EptPermissions.ReadAccess, MemoryType.WB, false)));
    }

    [Fact]
    public void UserExecuteWithoutMbec_Unsupported()
    {
        var rig = new Rig();
        Assert.Equal(ApiResult.Unsupported, rig.Do(h => h.Map(new Gpa(0), new Hpa(0), K4, EptPermissions.All, MemoryType.WB, false)));
        var mbec = new Rig(CpuCapabilities.Default with { Mbec = true });
        mbec.Map(0, 0, K4, EptPermissions.All);
    }

    [Fact]
    public void EveryPermissionSet_AcceptedExactlyWhenNotAMisconfiguration()
    {
        foreach (bool executeOnly in new[] { false, true })
        {
            var rig = new Rig(CpuCapabilities.Default with { Mbec = true, ExecuteOnly = executeOnly });
            for (int bits = 0; bits < 16; bits++)
            {
                var permissions = (EptPermissions)bits;
                bool read = (bits & 1) != 0, write = (bits & 2) != 0, execute = (bits & 12) != 0;
                bool misconfiguration = (!read && write) || (!read && execute && !executeOnly);
                ulong gpa = (ulong)bits * K4;
                ApiResult result = rig.Do(h => h.Map(new Gpa(gpa), new Hpa(gpa), K4, permissions, MemoryType.WB, false));
                Assert.Equal(misconfiguration ? ApiResult.InvalidPermission : ApiResult.Ok, result);
                if (!misconfiguration)
                {
                    Assert.True(rig.Hypervisor.Ept.TryFindLeaf(new Gpa(gpa), out EptLeaf leaf));
                    Assert.Equal(permissions, leaf.Permissions);
                }
            }
        }
    }

    [Fact]
    public void FailedOperation_ChangesNothingAndJournalsNothing()
    {
        var rig = new Rig();
        rig.Map(0x200000, 0x600000, M2, EptPermissions.ReadAccess);
        rig.Map(0x401000, 0x9000, K4);
        Dictionary<ulong, ulong> before = Snapshot(rig);
        int inUse = rig.Hypervisor.Ept.Pool.InUse;
        // Splits the 2 MiB page first, then finds 0x400000 unmapped: everything must be undone.
        Assert.Equal(ApiResult.NotExist, rig.Do(h => h.Unmap(new Gpa(0x3FF000), 2 * K4)));
        Assert.Equal(ApiResult.NotExist, rig.Do(h => h.Protect(new Gpa(0x200000), 0x202000, EptPermissions.ReadAccess)));
        Assert.Empty(rig.LastEffects);
        Assert.Equal(before, Snapshot(rig));
        Assert.Equal(inUse, rig.Hypervisor.Ept.Pool.InUse);
    }

    [Fact]
    public void PoolCap_ResourceLimitAndNothingChanged()
    {
        // Root plus two tables fit; a map that needs three new tables does not.
        var rig = new Rig(poolCapacity: 3);
        Assert.Equal(ApiResult.ResourceLimit, rig.Do(h => h.Map(new Gpa(0x1000), new Hpa(0), K4, Rwx, MemoryType.WB, false)));
        Assert.Equal(1, rig.Hypervisor.Ept.Pool.InUse);
        Assert.Empty(rig.LastEffects);
        rig.Map(0x40000000, 0, G1);
        Assert.Equal(2, rig.Hypervisor.Ept.Pool.InUse);
    }

    [Fact]
    public void LiveChanges_JournalInvept_FreshMapsDoNot()
    {
        var rig = new Rig();
        rig.Map(0x200000, 0x400000, M2);
        Assert.DoesNotContain(rig.LastEffects, e => e.Kind == EffectKind.Invept);
        rig.Ok(h => h.Protect(new Gpa(0x200000), M2, EptPermissions.ReadAccess));
        Assert.Equal(EffectKind.Invept, rig.LastEffects[^1].Kind);
        Assert.Equal(InveptType.SingleContext, rig.LastEffects[^1].InveptType);
    }

    [Fact]
    public void NonLeafEntries_GrantEverythingAndNothingElse()
    {
        var rig = new Rig(CpuCapabilities.Default with { Mbec = true });
        rig.Map(0x1000, 0x2000, K4, EptPermissions.ReadAccess, MemoryType.UC);
        for (EptLevel level = EptLevel.Pml4e; level > EptLevel.Pte; level--)
        {
            Observation entry = rig.Entry(0x1000, level);
            Assert.Equal(OutcomeKind.Entry, entry.Kind);
            Assert.Equal(0x407UL, entry.EntryValue & 0xFFF);
        }

        Assert.Equal(0x2001UL, rig.Entry(0x1000, EptLevel.Pte).EntryValue);
    }

    private static Dictionary<ulong, ulong> Snapshot(Rig rig)
    {
        var words = new Dictionary<ulong, ulong>();
        foreach (Hpa page in rig.Hypervisor.Memory.Pages)
        {
            for (ulong offset = 0; offset < 4096; offset += 8)
            {
                ulong value = rig.Hypervisor.Memory.Read(page + offset);
                if (value != 0)
                {
                    words[page.Value + offset] = value;
                }
            }
        }

        return words;
    }
}
