using EptFuzz.Contract;
using EptFuzz.Harness.Intent;

namespace EptFuzz.Harness.Tests.Intent;

public sealed class IntentModelTests
{
    private const EptPermissions Rwx = EptPermissions.ReadAccess | EptPermissions.WriteAccess | EptPermissions.ExecuteAccess;
    private const ulong K4 = 4096, M2 = 1UL << 21, G1 = 1UL << 30;

    private static IntentModel Model(CpuCapabilities? cpu = null) => new(cpu ?? CpuCapabilities.Default);

    [Fact]
    public void MapTwice_Duplicated()
    {
        var m = Model();
        Assert.Equal(ApiResult.Ok, m.Map(0x1000, 0x5000, K4, Rwx, MemoryType.WB, false));
        Assert.Equal(ApiResult.Duplicated, m.Map(0x1000, 0x6000, K4, Rwx, MemoryType.WB, false));
    }

    [Fact]
    public void MapInsideHugePage_Duplicated()
    {
        var m = Model();
        Assert.Equal(ApiResult.Ok, m.Map(0x200000, 0x40200000, M2, Rwx, MemoryType.WB, false));
        Assert.Equal(ApiResult.Duplicated, m.Map(0x3ff000, 0x1000, K4, Rwx, MemoryType.WB, false));
    }

    [Theory]
    [InlineData(0x1001UL, 0x5000UL, 4096UL, ApiResult.Unaligned)]
    [InlineData(0x200000UL, 0x1000UL, 1UL << 21, ApiResult.Unaligned)]
    [InlineData(0x1000UL, 0x5000UL, 8192UL, ApiResult.Unsupported)]
    [InlineData(0xffff_ffff_f000UL, 0x5000UL, 4096UL, ApiResult.Ok)]
    [InlineData(0x1_0000_0000_0000UL, 0x5000UL, 4096UL, ApiResult.OutOfRange)]
    [InlineData(0x1000UL, 0x4000_0000_0000UL, 4096UL, ApiResult.OutOfRange)]
    public void MapArguments_Result(ulong gpa, ulong hpa, ulong size, ApiResult expected) =>
        Assert.Equal(expected, Model().Map(gpa, hpa, size, Rwx, MemoryType.WB, false));

    [Fact]
    public void UnsupportedComesBeforeUnaligned()
    {
        var m = Model(new CpuCapabilities { Page1G = false });
        Assert.Equal(ApiResult.Unsupported, m.Map(0x1000, 0x1000, G1, Rwx, MemoryType.WB, false));
    }

    [Theory]
    [InlineData(EptPermissions.WriteAccess, true, ApiResult.InvalidPermission)]
    [InlineData(EptPermissions.WriteAccess | EptPermissions.ExecuteAccess, true, ApiResult.InvalidPermission)]
    [InlineData(EptPermissions.ExecuteAccess, true, ApiResult.Ok)]
    [InlineData(EptPermissions.ExecuteAccess, false, ApiResult.InvalidPermission)]
    [InlineData(EptPermissions.None, false, ApiResult.Ok)]
    [InlineData(EptPermissions.ReadAccess, false, ApiResult.Ok)]
    public void Permissions_Result(EptPermissions permissions, bool executeOnly, ApiResult expected) =>
        Assert.Equal(expected, Model(new CpuCapabilities { ExecuteOnly = executeOnly }).Map(0x1000, 0x1000, K4, permissions, MemoryType.WB, false));

    [Fact]
    public void UserExecuteWithoutMbec_Unsupported() =>
        Assert.Equal(ApiResult.Unsupported, Model().Map(0x1000, 0x1000, K4, EptPermissions.ReadAccess | EptPermissions.UserModeExecute, MemoryType.WB, false));

    [Fact]
    public void UnmapOfNothing_NotExist() => Assert.Equal(ApiResult.NotExist, Model().Unmap(0x1000, K4));

    [Fact]
    public void PartialUnmapOfHugePage_SplitsAndKeepsTheRest()
    {
        var m = Model();
        Assert.Equal(ApiResult.Ok, m.Map(0, 0x4000_0000, G1, Rwx, MemoryType.WT, true));
        Assert.Equal(ApiResult.Ok, m.Unmap(0x201000, K4));
        Assert.Null(m.Lookup(0x201000));
        var neighbour = m.Lookup(0x202000);
        Assert.Equal(new IntendedPage(new Gpa(0x202000), new Hpa(0x4020_2000), PageSize.Size4K, Rwx, MemoryType.WT, true), neighbour);
        var far = m.Lookup(0x3000_0000);
        Assert.Equal(PageSize.Size2M, far!.Value.Size);
        Assert.Equal(0x7000_0000UL, far.Value.Hpa.Value);
        Assert.Equal(511 + 511, m.Count);
    }

    [Fact]
    public void UnmapPartlyMapped_NotExistAndNothingChanges()
    {
        var m = Model();
        Assert.Equal(ApiResult.Ok, m.Map(0x1000, 0x1000, K4, Rwx, MemoryType.WB, false));
        Assert.Equal(ApiResult.NotExist, m.Unmap(0x1000, 2 * K4));
        Assert.NotNull(m.Lookup(0x1000));
    }

    [Fact]
    public void ProtectPartOfHugePage_OnlyThatPartChanges()
    {
        var m = Model();
        Assert.Equal(ApiResult.Ok, m.Map(0x200000, 0x200000, M2, Rwx, MemoryType.WB, false));
        Assert.Equal(ApiResult.Ok, m.Protect(0x201000, K4, EptPermissions.ReadAccess));
        Assert.Equal(EptPermissions.ReadAccess, m.Lookup(0x201000)!.Value.Permissions);
        Assert.Equal(Rwx, m.Lookup(0x200000)!.Value.Permissions);
        Assert.Equal(512, m.Count);
    }

    [Fact]
    public void SplitThenMerge_RoundTrip()
    {
        var m = Model();
        Assert.Equal(ApiResult.Ok, m.Map(0x4000_0000, 0x8000_0000, G1, Rwx, MemoryType.WB, false));
        Assert.Equal(ApiResult.Ok, m.Split(0x4000_0000));
        Assert.Equal(512, m.Count);
        Assert.Equal(ApiResult.Ok, m.Merge(0x4000_0000, G1));
        Assert.Equal(1, m.Count);
        Assert.Equal(PageSize.Size1G, m.Lookup(0x4123_4567)!.Value.Size);
    }

    [Fact]
    public void MergeOfDifferentAttributes_NotMergeable()
    {
        var m = Model();
        Assert.Equal(ApiResult.Ok, m.Map(0x200000, 0x200000, M2, Rwx, MemoryType.WB, false));
        Assert.Equal(ApiResult.Ok, m.Split(0x200000));
        Assert.Equal(ApiResult.Ok, m.Retype(0x3ff000, K4, MemoryType.UC, false));
        Assert.Equal(ApiResult.NotMergeable, m.Merge(0x200000, M2));
        Assert.Equal(512, m.Count);
    }

    [Fact]
    public void SplitOf4KPage_NotExist()
    {
        var m = Model();
        Assert.Equal(ApiResult.Ok, m.Map(0x1000, 0x1000, K4, Rwx, MemoryType.WB, false));
        Assert.Equal(ApiResult.NotExist, m.Split(0x1000));
    }

    [Fact]
    public void IdentityMap_PcLikeLowMemory_LargestPagesAndUcLegacy()
    {
        var m = Model();
        Assert.Equal(ApiResult.Ok, m.AddMemoryRange(0, 0xA0000, MemoryType.WB));
        Assert.Equal(ApiResult.Ok, m.AddMemoryRange(0xA0000, 0x100000, MemoryType.UC));
        Assert.Equal(ApiResult.Ok, m.AddMemoryRange(0x100000, 0x8000_0000, MemoryType.WB));
        Assert.Equal(ApiResult.Ok, m.IdentityMap(0, 0));
        Assert.Equal(MemoryType.UC, m.Lookup(0xB8000)!.Value.MemoryType);
        Assert.Equal(PageSize.Size4K, m.Lookup(0x100000)!.Value.Size);
        Assert.Equal(PageSize.Size2M, m.Lookup(0x200000)!.Value.Size);
        Assert.Equal(PageSize.Size1G, m.Lookup(0x4000_0000)!.Value.Size);
        Assert.Null(m.Lookup(0x8000_0000));
    }

    [Fact]
    public void IdentityMap_JosOffset()
    {
        var m = Model();
        Assert.Equal(ApiResult.Ok, m.AddMemoryRange(0, 0x40_0000, MemoryType.WB));
        Assert.Equal(ApiResult.Ok, m.IdentityMap(0x1000_0000, 0x100000));
        Assert.Equal(0x5000UL, m.Lookup(0x5000)!.Value.Hpa.Value);
        Assert.Equal(0x1010_0000UL, m.Lookup(0x100000)!.Value.Hpa.Value);
        Assert.Equal(0x1020_0000UL, m.Lookup(0x200000)!.Value.Hpa.Value);
        Assert.Equal(PageSize.Size2M, m.Lookup(0x200000)!.Value.Size);
    }

    [Fact]
    public void OverlappingMemoryRanges_Duplicated()
    {
        var m = Model();
        Assert.Equal(ApiResult.Ok, m.AddMemoryRange(0, 0x10000, MemoryType.WB));
        Assert.Equal(ApiResult.Duplicated, m.AddMemoryRange(0x8000, 0x20000, MemoryType.WB));
    }

    [Fact]
    public void RawEditRegion_Unknown()
    {
        var m = Model();
        m.MarkUnknown(0x200000, 0x400000);
        Assert.False(m.IsKnown(0x3ff000));
        Assert.True(m.IsKnown(0x400000));
    }
}
