using EptFuzz.Contract;
using EptFuzz.Impl.Ept;
using static EptFuzz.Impl.Tests.Rig;

namespace EptFuzz.Impl.Tests;

/// <summary>
/// Random operation sequences against a plain dictionary model (4 KiB page → host page and
/// permissions): after every step the tables translate exactly what the model says, and once
/// everything is unmapped the pool is back to its initial count.
/// </summary>
public sealed class PoolAccountingTests
{
    private readonly record struct Page(ulong Hpa, EptPermissions Permissions, MemoryType Type);

    [Theory]
    [InlineData(1UL)]
    [InlineData(0x5eedUL)]
    [InlineData(0xC0FFEEUL)]
    [InlineData(42UL)]
    public void RandomSequences_AgreeWithModel_AndReturnThePool(ulong seed)
    {
        var random = new SplitMix64(seed);
        var rig = new Rig();
        int initial = rig.Hypervisor.Ept.Pool.InUse;
        var model = new Dictionary<ulong, Page>();
        // A window of 4 GiB around a 512 GiB boundary, so PML4 and PDPT tables come and go too.
        ulong window = (1UL << 39) - 2 * G1;
        ulong[] sizes = [K4, M2, G1];
        EptPermissions[] permissionSets = [Rwx, EptPermissions.ReadAccess, EptPermissions.ReadAccess | EptPermissions.WriteAccess, EptPermissions.None];

        for (int step = 0; step < 400; step++)
        {
            // 1 GiB pages are rarer, so the window does not fill up with them.
            ulong size = random.Below(8) == 0 ? G1 : sizes[random.Below(2)];
            ulong gpa = window + (ulong)random.Below((int)(4 * G1 / size)) * size;
            ulong hpa = (ulong)random.Below(1 << 10) * size % (1UL << 40);
            EptPermissions permissions = permissionSets[random.Below(permissionSets.Length)];
            switch (random.Below(6))
            {
                case 0:
                case 1:
                {
                    bool free = Range(gpa, size).All(p => !model.ContainsKey(p));
                    ApiResult result = rig.Do(h => h.Map(new Gpa(gpa), new Hpa(hpa), size, permissions, MemoryType.WB, false));
                    Assert.Equal(free ? ApiResult.Ok : ApiResult.Duplicated, result);
                    if (free)
                    {
                        foreach (ulong page in Range(gpa, size))
                        {
                            model[page] = new Page(hpa + (page - gpa), permissions, MemoryType.WB);
                        }
                    }

                    break;
                }

                case 2:
                {
                    ulong length = size == K4 ? K4 * (ulong)(1 + random.Below(3)) : size;
                    bool all = Range(gpa, length).All(model.ContainsKey);
                    Assert.Equal(all ? ApiResult.Ok : ApiResult.NotExist, rig.Do(h => h.Unmap(new Gpa(gpa), length)));
                    if (all)
                    {
                        foreach (ulong page in Range(gpa, length))
                        {
                            model.Remove(page);
                        }
                    }

                    break;
                }

                case 3:
                {
                    bool all = Range(gpa, size).All(model.ContainsKey);
                    Assert.Equal(all ? ApiResult.Ok : ApiResult.NotExist, rig.Do(h => h.Protect(new Gpa(gpa), size, permissions)));
                    if (all)
                    {
                        foreach (ulong page in Range(gpa, size))
                        {
                            model[page] = model[page] with { Permissions = permissions };
                        }
                    }

                    break;
                }

                case 4:
                    rig.Do(h => h.Split(new Gpa(gpa)));
                    break;
                default:
                    rig.Do(h => h.Merge(new Gpa(gpa & ~(M2 - 1)), M2));
                    break;
            }

            if (step % 50 == 0)
            {
                CheckAgainstModel(rig, model, window);
            }
        }

        CheckAgainstModel(rig, model, window);
        foreach (ulong page in model.Keys.ToList())
        {
            rig.Ok(h => h.Unmap(new Gpa(page), K4));
        }

        Assert.Equal(initial, rig.Hypervisor.Ept.Pool.InUse);
        Assert.False(rig.Hypervisor.Ept.TryTranslate(new Gpa(window), out _));
    }

    private static IEnumerable<ulong> Range(ulong gpa, ulong size)
    {
        for (ulong page = gpa; page < gpa + size; page += K4)
        {
            yield return page;
        }
    }

    private static void CheckAgainstModel(Rig rig, Dictionary<ulong, Page> model, ulong window)
    {
        foreach ((ulong gpa, Page page) in model)
        {
            Assert.True(rig.Hypervisor.Ept.TryFindLeaf(new Gpa(gpa + 0x10), out EptLeaf leaf));
            Assert.Equal(page.Hpa + 0x10, leaf.Translate(new Gpa(gpa + 0x10)).Value);
            Assert.Equal(page.Permissions, leaf.Permissions);
        }

        // Sampled holes stay holes.
        for (ulong gpa = window; gpa < window + 4 * G1; gpa += 0x1234_5000 & ~(K4 - 1))
        {
            Assert.Equal(model.ContainsKey(gpa), rig.Hypervisor.Ept.TryTranslate(new Gpa(gpa), out _));
        }
    }
}
