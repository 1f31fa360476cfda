namespace EptFuzz.Harness.Tests.Cases;

/// <summary>The examples of shared/spec/case-format.md, written out as whole cases.</summary>
internal static class SpecExamples
{
    /// <summary>The "Example (a minimized reproducer)" section, verbatim.</summary>
    public const string MinimizedReproducer = """
        eptcase 1
        # found by: eptfuzz fuzz --seed 0x5eed --max-total-time 60 (generator 1)
        # first divergence: step 5 (line 7): impl says ok hpa=0x40201000, model says violation qual=0x18a
        cpu maxphyaddr=46 page1g=1 ad=1
        eptp mt=WB walk=4 ad=1
        map gpa=0x200000 hpa=0x40200000 size=2M perm=rwx mt=WB
        protect gpa=0x201000 size=4K perm=r
        write gpa=0x201000 => violation qual=0x18a gpa=0x201000

        """;

    /// <summary>Every step form of the spec's tables, with concrete values, and every expectation form.</summary>
    public const string EveryForm = """
        # every verb and key of case-format.md version 1
        eptcase 1
        cpu maxphyaddr=46 exec-only=1 page2m=1 page1g=1 ad=1 mbec=0 walk5=0 adv-exit-info=0 eptp-uc=1 eptp-wb=1
        eptp mt=WB walk=4 ad=0
        eptp mt=UC walk=5 ad=1
        eptp raw=0x0000_0000_0010_001e
        controls mbec=0
        controls mbec=1
        guest paging=off
        memory start=0x0 end=0x9f000 mt=WB
        memory start=0x100000 end=0x4000_0000 mt=WB
        memory start=0xfec00000 end=0x1_0000_0000 mt=UC
        identity-map
        identity-map offset=0xf000_0000 offset-from=0xf0000000
        map gpa=0x200000 hpa=0x40200000 size=2M perm=rwx
        map gpa=0x1000 hpa=0x5000 size=4096 perm=rwxu mt=UC ipat=1 => ok
        map gpa=0x40000000 hpa=0x40000000 size=1G perm=none mt=7 => Unaligned
        unmap gpa=0x1000 size=4K => ok
        protect gpa=0x201000 size=4K perm=rx => ok
        retype gpa=0x201000 size=4K mt=WT ipat=0 => NotExist
        split gpa=0x200000 => Duplicated
        merge gpa=0x200000 size=2M => NotMergeable
        invept type=single
        invept type=global => ok
        edit gpa=0x201000 level=pte set=0x2 clear=0x1 leaf-hpa=0x7000 => ok
        edit gpa=0x201000 level=2 set=0x80
        edit gpa=0x201000 level=pdpte clear=0x7 => OutOfRange
        edit gpa=0x201000 level=pml4e
        edit gpa=0x201000 level=pml5e => Unsupported
        poke hpa=0x7008 value=0xffff_ffff_ffff_ffff
        guest paging=4level cr3=0x10000 tables=0x11000-0x20000
        guest paging=4level cr3=0x10000 tables=0x11000-0x20000 wp=1 nxe=1 smep=1 pat=0x0007040600070406 => ok
        gmap gva=0x400000 gpa=0x200000 size=4K perm=wux
        gmap gva=0x800000 gpa=0x400000 size=2M perm=w => InvalidPermission
        gmap gva=0xc00000 gpa=0x400000 size=4K perm=none
        gedit gva=0x400000 level=pte set=0x60 clear=0x4
        read gpa=0x201000
        write gpa=0x201000 => violation qual=0x18a gpa=0x201000
        fetch gpa=0x201000 => violation qual=0x184 gpa=0x201000 gla=0x201000
        read gva=0x400000 => ok hpa=0x40201000
        write gva=0x400000 cpl=0 => ok hpa=0x40201000 mt=WB size=2M
        fetch gva=0x400000 cpl=3 => page-fault code=0x15
        read gpa=0x1000 => misconfig
        read gpa=0x2000 => misconfig gpa=0x2000
        entry gpa=0x201000 level=pte
        entry gpa=0x201000 level=1 => entry a=1 d=0
        entry gpa=0x201000 level=pde => entry a=0 d=0 value=0x40200087
        vmentry
        vmentry => vmentry ok
        vmentry => vmentry fail

        """;
}
