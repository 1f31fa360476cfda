using EptFuzz.Contract;
using EptFuzz.Harness.Cases;
using EptFuzz.Harness.Running;
using EptFuzz.Impl.Hypervisor;
using EptFuzz.Impl.Memory;
using EptFuzz.Impl.Target;
using EptFuzz.Targets.Model;

namespace EptFuzz.Harness.Tests.Memory;

/// <summary>
/// Every memory (the hypervisor's, each session's, the runner's mirror) reuses the pages of the
/// cases run before it on the same thread, and clears a page only when it is not written whole.
/// A word a case never wrote must still read 0, whatever the earlier cases left in the page.
/// </summary>
public sealed class RecycledMemoryTests
{
    private static RunOptions ModelAndImpl() => new()
    {
        Hypervisor = () => new EptHypervisor(),
        Targets = [new ModelTarget(), new ImplTarget()],
    };

    // Without 2 MiB pages, a partial unmap of a 1 GiB page writes 513 whole tables, every entry
    // of the 512 page tables non-zero: the pages go back to the thread's recyclers full.
    private const string Dirtying = """
        eptcase 1
        cpu page2m=0
        eptp
        map gpa=0x40000000 hpa=0x80000000 size=1G perm=rwx
        unmap gpa=0x40001000 size=4K
        read gpa=0x40002000
        """;

    // The raw edit makes an entry that was 0 present: the mirror must know it was 0 (else the
    // read after it is only "stale-allowed", not compared), and both translators must see the
    // same page table, with zeros around the two entries the case wrote.
    private const string Probing = """
        eptcase 1
        cpu
        eptp
        map gpa=0x1000 hpa=0x5000 size=4K perm=rwx
        edit gpa=0x2000 level=pte set=0x6037
        read gpa=0x2000 => ok hpa=0x6000
        read gpa=0x3000
        entry gpa=0x3000 level=pte => entry a=0 d=0 value=0x0
        """;

    [Fact]
    public void ACaseAfterOneThatFilledPages_RunsAsOnAFreshThread()
    {
        CaseResult clean = RunOnFreshThread(() => Run(Probing));

        CaseResult dirtied = RunOnFreshThread(() =>
        {
            Assert.Equal(CaseStatus.Passed, Run(Dirtying).Status);
            return Run(Probing);
        });

        Assert.Equal(CaseStatus.Passed, clean.Status);
        Assert.Equal(0, clean.Counters.StaleAllowed);
        Assert.Equal(clean.Status, dirtied.Status);
        Assert.Equal(clean.Counters, dirtied.Counters);
    }

    [Fact]
    public void SparseHostMemory_ReusedPagesReadZeroBesideTheWordsWritten()
    {
        RunOnFreshThread(() =>
        {
            var ones = Enumerable.Repeat(ulong.MaxValue, 512).ToArray();
            var first = new SparseHostMemory();
            for (ulong page = 0; page < 64; page++)
            {
                first.WritePage(page << 12, ones);
            }

            first.Release();
            var second = new SparseHostMemory();
            for (ulong page = 0; page < 64; page++)
            {
                second.Write(new Hpa((page << 12) + 8), 5);
                for (ulong offset = 0; offset < 4096; offset += 8)
                {
                    Assert.Equal(offset == 8 ? 5UL : 0UL, second.Read(new Hpa((page << 12) + offset)));
                }
            }

            return 0;
        });
    }

    private static CaseResult Run(string text)
    {
        var parsed = CaseParser.Parse(text, "recycled.ept");
        Assert.True(parsed.Succeeded, parsed.ErrorText());
        return CaseRunner.Run(parsed.Case!, ModelAndImpl());
    }

    // Each test starts from recyclers no other test filled: the pools are per thread.
    private static T RunOnFreshThread<T>(Func<T> body)
    {
        T result = default!;
        Exception? failure = null;
        var thread = new Thread(() =>
        {
            try
            {
                result = body();
            }
            catch (Exception e)
            {
                failure = e;
            }
        });
        thread.Start();
        thread.Join();
        if (failure is not null)
        {
            throw new InvalidOperationException("the test body failed on its thread", failure);
        }

        return result;
    }

    [Fact]
    public void ReadPage_GivesWhatItsReadsGive_FromARecycledPage()
    {
        var dirty = new SparseHostMemory();
        for (ulong i = 0; i < 512; i++)
        {
            dirty.Write(new Hpa(0x7000 + (i * 8)), ~0UL);
        }

        dirty.Release();
        // Backed by the page the first memory left full of ones: a word never written reads 0.
        var memory = new SparseHostMemory();
        memory.Write(new Hpa(0x3000 + 16), 0x1234);
        var words = new ulong[512];
        Array.Fill(words, 0xdeadUL);
        memory.ReadPage(new Hpa(0x3000), words);
        for (ulong i = 0; i < 512; i++)
        {
            Assert.Equal(memory.Read(new Hpa(0x3000 + (i * 8))), words[i]);
        }

        Assert.Equal(0x1234UL, words[2]);
        Assert.Equal(0UL, words[3]);
        Array.Fill(words, 0xdeadUL);
        memory.ReadPage(new Hpa(0x9000), words);
        Assert.All(words, w => Assert.Equal(0UL, w));
        Assert.Throws<ArgumentException>(() => memory.ReadPage(new Hpa(0x3008), words));
        memory.Release();
    }
}
