using EptFuzz.Contract;
using EptFuzz.Harness.Cases;
using EptFuzz.Harness.Fuzzing.Simplifiers;

namespace EptFuzz.Harness.Tests.Fuzzing;

/// <summary>The reducer's simplifiers, one unit per step kind, each on its own: what it offers, in which order.</summary>
public sealed class SimplifierTests
{
    private static List<string> Offers(StepSimplifier unit, Step step) => [.. unit.Simplify(step).Select(CasePrinter.PrintStep)];

    [Fact]
    public void EachStepKind_HasAtMostOneUnit_AndAStepOfAnotherKindGetsNothingFromIt()
    {
        Assert.Equal(StepSimplifiers.All.Count, StepSimplifiers.All.Select(u => u.StepType).Distinct().Count());
        Assert.IsType<MapSimplifier>(StepSimplifiers.For(new MapStep(new Gpa(0), new Hpa(0), 4096, EptPermissions.ReadAccess)));
        Assert.Null(StepSimplifiers.For(new InveptStep(InveptType.Global)));
        Assert.Empty(new MapSimplifier().Simplify(new UnmapStep(new Gpa(0x1000), 4096)));
    }

    [Fact]
    public void Map_DropsKeys_ThenShrinksSize_Permissions_AndAddresses_InThatOrder()
    {
        var map = new MapStep(new Gpa(0x4020_0000), new Hpa(0x8000_0000), 1UL << 21, EptPermissions.ReadAccess | EptPermissions.WriteAccess, MemoryType.UC, true);
        Assert.Equal(
            [
                "map gpa=0x40200000 hpa=0x80000000 size=2M perm=rw ipat=1",
                "map gpa=0x40200000 hpa=0x80000000 size=2M perm=rw mt=UC",
                "map gpa=0x40200000 hpa=0x80000000 size=4K perm=rw mt=UC ipat=1",
                "map gpa=0x40200000 hpa=0x80000000 size=2M perm=r mt=UC ipat=1",
                "map gpa=0x40200000 hpa=0x80000000 size=2M perm=w mt=UC ipat=1",
                "map gpa=0x40200000 hpa=0x40200000 size=2M perm=rw mt=UC ipat=1",
                // Clearing the top bit of the host address keeps it 2 MiB aligned: 0x0.
                "map gpa=0x40200000 hpa=0x0 size=2M perm=rw mt=UC ipat=1",
                "map gpa=0x200000 hpa=0x80000000 size=2M perm=rw mt=UC ipat=1",
            ],
            Offers(new MapSimplifier(), map));
    }

    [Fact]
    public void Addresses_KeepTheAlignmentTheyAreAskedFor()
    {
        Assert.Equal([0x3fe0_1000UL, 0x1fe0_1238UL], Simpler.Addresses(0x3fe0_1238, 1));
        // Without bit 30, 0x60200000 is 0x20200000: not 1 GiB aligned, so not offered for a 1 GiB page.
        Assert.Empty(Simpler.Addresses(0x6020_0000, 1UL << 30));
        Assert.Equal([0x2020_0000UL], Simpler.Addresses(0x6020_0000, 1UL << 21));
        Assert.Empty(Simpler.Addresses(0, 4096));
        Assert.Equal([1UL << 12, 1UL << 21], Simpler.Sizes(1UL << 30));
        Assert.Empty(Simpler.Sizes(4096));
    }

    [Fact]
    public void Unmap_AtTheSmallestSizeAndAddress_OffersNothing()
    {
        Assert.Empty(new UnmapSimplifier().Simplify(new UnmapStep(new Gpa(0), 4096)));
        Assert.Equal(["unmap gpa=0x1000 size=4K", "unmap gpa=0x0 size=2M"], Offers(new UnmapSimplifier(), new UnmapStep(new Gpa(0x1000), 1UL << 21)));
    }

    [Fact]
    public void Protect_ShrinksSize_ThenTakesAwayOnePermissionAtATime()
    {
        var protect = new ProtectStep(new Gpa(0), 1UL << 21, EptPermissions.ReadAccess | EptPermissions.ExecuteAccess);
        Assert.Equal(["protect gpa=0x0 size=4K perm=rx", "protect gpa=0x0 size=2M perm=r", "protect gpa=0x0 size=2M perm=x"], Offers(new ProtectSimplifier(), protect));
    }

    [Fact]
    public void Retype_DropsIgnorePat_ShrinksSize_AndGoesToWriteBack()
    {
        Assert.Equal(
            ["retype gpa=0x0 size=4K mt=UC", "retype gpa=0x0 size=2M mt=WB"],
            Offers(new RetypeSimplifier(), new RetypeStep(new Gpa(0), 1UL << 21, MemoryType.UC)));
        Assert.Empty(new RetypeSimplifier().Simplify(new RetypeStep(new Gpa(0), 4096, MemoryType.WB)));
    }

    [Fact]
    public void Eptp_Raw_BecomesTheHypervisorsOwn_AndNamedKeysAreDroppedOneByOne()
    {
        Assert.Equal(["eptp"], Offers(new EptpSimplifier(), new EptpStep(Raw: 0x1234_501e)));
        Assert.Equal(["eptp walk=5", "eptp mt=UC"], Offers(new EptpSimplifier(), new EptpStep(MemoryType: MemoryType.UC, WalkLength: 5)));
    }

    [Fact]
    public void Cpu_DropsEachCapabilityKey()
    {
        Assert.Equal(["cpu page1g=0", "cpu maxphyaddr=39"], Offers(new CpuSimplifier(), new CpuStep(MaxPhyAddr: 39, Page1G: false)));
        Assert.Empty(new CpuSimplifier().Simplify(new CpuStep()));
    }

    [Fact]
    public void Guest_OnlyWithPagingOn_DropsItsControlBits()
    {
        Assert.Empty(new GuestSimplifier().Simplify(GuestStep.Off()));
        var on = GuestStep.FourLevel(new Gpa(0x10000), new Gpa(0x10000), new Gpa(0x20000)) with { Wp = true, Pat = 0x0606 };
        var offers = new GuestSimplifier().Simplify(on).ToList();
        Assert.Equal(2, offers.Count);
        Assert.True(offers[0].Wp is null && offers[0].Pat == 0x0606);
        Assert.True(offers[1].Wp == true && offers[1].Pat is null);
    }

    [Fact]
    public void Edit_DropsKeys_ThenKeepsTheLowestBitOfAWideSet()
    {
        var edit = new EditStep(new Gpa(0x1000), EptLevel.Pte, Set: 0x6);
        var offers = new EditSimplifier().Simplify(edit).ToList();
        Assert.Equal(new EditStep(new Gpa(0x1000), EptLevel.Pte), offers[0]);
        Assert.Equal(edit with { Set = 0x2 }, offers[1]);
        Assert.Equal(edit with { Gpa = new Gpa(0) }, offers[2]);
        Assert.Equal(3, offers.Count);
    }

    [Fact]
    public void GEdit_DropsOneSideOnlyWhenItHasBoth()
    {
        var both = new GEditStep(new Gva(0x1000), EptLevel.Pte, Set: 0x2, Clear: 0x4);
        Assert.Equal([both with { Set = null }, both with { Clear = null }], new GEditSimplifier().Simplify(both));
        Assert.Empty(new GEditSimplifier().Simplify(both with { Clear = null }));
    }

    [Fact]
    public void GMap_ShrinksSize_ThenDropsPermissions()
    {
        var gmap = new GMapStep(new Gva(0), new Gpa(0), 1UL << 21, GuestPagePermissions.Writable);
        Assert.Equal([gmap with { Size = 4096 }, gmap with { Permissions = GuestPagePermissions.None }], new GMapSimplifier().Simplify(gmap));
    }

    [Fact]
    public void Access_DropsCpl_ThenSimplifiesItsAddress()
    {
        var physical = AccessStep.Physical(AccessKind.Read, new Gpa(0x3fe0_1238)) with { Cpl = 3 };
        Assert.Equal(
            [physical with { Cpl = null }, physical with { Gpa = new Gpa(0x3fe0_1000) }, physical with { Gpa = new Gpa(0x1fe0_1238) }],
            new AccessSimplifier().Simplify(physical));
        var linear = new AccessStep(AccessKind.Write, Gva: new Gva(0x7000_0123));
        Assert.Equal([linear with { Gva = new Gva(0x7000_0000) }], new AccessSimplifier().Simplify(linear));
        Assert.Empty(new AccessSimplifier().Simplify(linear with { Gva = new Gva(0x7000_0000) }));
    }

    [Fact]
    public void EntrySplitAndIdentityMap_OfferTheirOneSimplerForm()
    {
        Assert.Equal([new EntryStep(new Gpa(0x1000), EptLevel.Pde)], new EntrySimplifier().Simplify(new EntryStep(new Gpa(0x201000), EptLevel.Pde)));
        Assert.Equal([new SplitStep(new Gpa(0))], new SplitSimplifier().Simplify(new SplitStep(new Gpa(0x4000_0000))));
        Assert.Equal([new IdentityMapStep()], new IdentityMapSimplifier().Simplify(new IdentityMapStep(Offset: 0x1000)));
        Assert.Empty(new IdentityMapSimplifier().Simplify(new IdentityMapStep()));
    }

    [Fact]
    public void Variants_DropTheExpectationFirst_ThenAskTheKindsUnit()
    {
        var step = new UnmapStep(new Gpa(0x1000), 4096) { Expectation = new ResultExpectation(ApiResult.Ok) };
        var variants = StepSimplifiers.Variants(step).ToList();
        Assert.Null(variants[0].Expectation);
        Assert.Equal(new UnmapStep(new Gpa(0), 4096) { Expectation = step.Expectation }, variants[1]);
        Assert.Equal(2, variants.Count);
        Assert.Equal([new InveptStep(InveptType.Global)], StepSimplifiers.Variants(new InveptStep(InveptType.Global) { Expectation = new ResultExpectation(ApiResult.Ok) }));
    }
}
